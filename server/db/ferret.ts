/**
 * The embedded database: FerretDB 1.24.2 (MongoDB wire protocol) on SQLite files,
 * built from source with Go on first use (ferretBuild.ts) and run here as a child
 * process on 127.0.0.1.
 *
 * Used when MONGODB_URI is not set (dev, tests, demo). Known FerretDB limits that
 * the rest of the code must live with: findAndModify is not atomic (see agenda.ts),
 * no change streams, no TTL or partial indexes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { mkdir, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { ensureFerretDB, FERRETDB_VERSION, isAlive, quiet, tail, type Log } from './ferretBuild.ts';
import { dieWithParentPrefix } from './parentDeath.ts';
import { freePort } from './ports.ts';

export { ensureFerretDB, ferretCacheDir, FERRETDB_VERSION, type Log } from './ferretBuild.ts';

export interface EmbeddedDb {
  /** mongodb://127.0.0.1:PORT/ (no database name: pick one with client.db(name)). */
  uri: string;
  port: number;
  dataDir: string;
  pid: number;
  /** SIGTERM, then SIGKILL after a grace period; resolves when the process is gone. Idempotent. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Folder for the SQLite files (created if missing). One FerretDB per folder. */
  dataDir: string;
  /** Port on 127.0.0.1; a free one is picked when omitted. */
  port?: number;
  log?: Log;
  /** How long to wait for FerretDB to answer a ping (default 30 s). */
  startTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL in stop() (default 5 s). */
  stopGraceMs?: number;
  /**
   * End FerretDB when this process dies, even by SIGKILL (default true; Linux, see
   * parentDeath.ts). false only to test the orphan clean-up below.
   */
  dieWithParent?: boolean;
}

const PIDFILE = 'ferretdb.pid';

// Why kill children on 'exit': FerretDB is a separate OS process and Node does not end its
// children when it exits. Without this, a parent that exits without calling stop() (a thrown
// error, process.exit(), mocha --exit) leaves a ferretdb running forever, holding its port
// and the SQLite files; a later start on the same data folder would then put a second
// FerretDB on the same files, and FerretDB caches metadata assuming it is the only one.
// Only synchronous work is possible in an 'exit' handler, hence SIGKILL and rmSync.
// 'exit' does not run when the parent dies from SIGKILL or from a signal it does not handle
// (a plain `kill PID` of a server with no SIGTERM handler): for that FerretDB is started
// with Linux's parent-death signal (parentDeath.ts), so the kernel sends it SIGTERM as its
// parent dies. Where that is not available, the pid file below lets the next start on the
// same folder find and end such an orphan.
const children = new Map<ChildProcess, string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [child, dataDir] of children) {
      try {
        child.kill('SIGKILL');
        rmSync(path.join(dataDir, PIDFILE), { force: true });
      } catch {
        /* already gone */
      }
    }
  });
}

/**
 * Starts FerretDB on 127.0.0.1 with its SQLite files in `dataDir` and resolves once it
 * answers a MongoDB ping.
 */
export async function startFerretDB(opts: StartOptions): Promise<EmbeddedDb> {
  const log = opts.log ?? quiet;
  const bin = await ensureFerretDB(log);
  await mkdir(opts.dataDir, { recursive: true });
  const dataDir = await realpath(opts.dataDir);
  await endOrphan(dataDir, log);

  // A port picked by freePort() can be taken by someone else before FerretDB binds it; then
  // FerretDB exits with "address already in use" and we try another one.
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort());
    try {
      return await startOnce(bin, dataDir, port, opts);
    } catch (err) {
      const retry = opts.port === undefined && attempt < 3 && err instanceof StartError && /address already in use/i.test(err.stderr);
      if (!retry) throw err;
      log(`port ${port} was taken before FerretDB could bind it, trying another one`);
    }
  }
}

class StartError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

async function startOnce(bin: string, dataDir: string, port: number, opts: StartOptions): Promise<EmbeddedDb> {
  const t0 = Date.now();
  // Why cwd=dataDir with relative paths: --sqlite-url is parsed as a URL, so a folder whose
  // name holds '?', '#', '%' or spaces would be misread; "file:./" + cwd avoids any escaping.
  // The URL must end with '/' (FerretDB wants a directory).
  const args = [
    '--handler=sqlite',
    '--sqlite-url=file:./',
    '--state-dir=.',
    `--listen-addr=127.0.0.1:${port}`, // loopback only: the embedded database has no auth
    '--telemetry=disable',
    '--debug-addr=-', // no HTTP debug listener (it would take a fixed port, 8088)
    // FerretDB logs every error reply (even the driver's harmless endSessions on close) at
    // WARN with a dump of the message; errors are what we need for start-up failures.
    '--log-level=error',
  ];
  // FERRETDB_* variables of the parent would override nothing we pass, but could add
  // settings (setup users, TLS, …); run it with a clean FerretDB configuration.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERRETDB_')));
  installExitHook();
  const [cmd, ...cmdArgs] = [...(opts.dieWithParent === false ? [] : await dieWithParentPrefix()), bin, ...args];
  const child = spawn(cmd!, cmdArgs, { cwd: dataDir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.set(child, dataDir);
  // Do not keep the parent alive just for FerretDB: a script that ends without stop()
  // then exits normally, and the 'exit' hook above ends FerretDB.
  child.unref();
  (child.stderr as net.Socket).unref();

  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = tail(stderr + d.toString(), 8000)));
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      resolve();
    });
    child.once('exit', () => resolve());
  }).then(() => {
    children.delete(child);
  });
  const isGone = () => spawnError !== undefined || child.exitCode !== null || child.signalCode !== null;

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = opts.stopGraceMs ?? 5000): Promise<void> =>
    (stopping ??= (async () => {
      if (!isGone()) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(killer);
      }
      await exited;
      await rm(path.join(dataDir, PIDFILE), { force: true });
    })());

  if (child.pid !== undefined) await writeFile(path.join(dataDir, PIDFILE), `${child.pid}\n`);

  const uri = `mongodb://127.0.0.1:${port}/`;
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    if (isGone()) {
      await stop();
      const how = spawnError ? `could not be started (${spawnError.message})` : `exited with ${child.exitCode ?? child.signalCode}`;
      throw new StartError(`FerretDB (${bin}) ${how} while starting on 127.0.0.1:${port}, data ${dataDir}.\nFerretDB stderr:\n${tail(stderr, 3000) || '(empty)'}`, stderr);
    }
    // A bare TCP connect first: refused connections fail at once, whereas the driver would
    // sit out its server-selection timeout (500 ms) on each try before FerretDB listens.
    const ping = (await tcpOpen(port)) ? await pingOnce(uri, child.pid) : 'not listening yet';
    if (ping === null) break;
    lastError = ping;
    if (Date.now() > deadline) {
      await stop(1000);
      throw new StartError(
        `FerretDB did not answer on ${uri} within ${timeoutMs / 1000} s (last error: ${lastError}).\nFerretDB stderr:\n${tail(stderr, 3000) || '(empty)'}`,
        stderr,
      );
    }
    await sleep(20);
  }
  opts.log?.(`FerretDB ${FERRETDB_VERSION} listening on 127.0.0.1:${port} (data ${dataDir}, started in ${Date.now() - t0} ms)`);

  return { uri, port, dataDir, pid: child.pid!, stop: () => stop() };
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.setTimeout(500);
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.once('timeout', () => done(false));
  });
}

/**
 * null once our FerretDB answers, else why not. Why serverStatus and its pid rather than
 * a plain ping: if something else already listens on the port, the ping would succeed
 * against it a moment before our FerretDB exits with "address already in use".
 */
async function pingOnce(uri: string, pid: number | undefined): Promise<string | null> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 500, connectTimeoutMS: 500, directConnection: true });
  try {
    await client.connect();
    const status = await client.db('admin').command({ serverStatus: 1 });
    if (Number(status.pid) !== pid) return `another server (pid ${String(status.pid)}) answers on this port`;
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.close().catch(() => {});
  }
}

/**
 * A FerretDB left running on this data folder by a parent that died without running its
 * 'exit' hook (SIGKILL, unhandled signal) would otherwise share the SQLite files with the
 * one we start. Linux only: the pid counts as that orphan only if /proc shows a process
 * named ferretdb whose working directory is this folder (so a recycled pid is never killed).
 */
async function endOrphan(dataDir: string, log: Log): Promise<void> {
  const pidFile = path.join(dataDir, PIDFILE);
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0) return;
  if (!isAlive(pid)) {
    await rm(pidFile, { force: true });
    return;
  }
  if (process.platform !== 'linux') {
    log(`warning: ${pidFile} names pid ${pid}, which is still alive; if it is an old FerretDB on this folder, stop it`);
    return;
  }
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '');
  const argv0 = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0')[0] ?? '';
  if (cwd !== dataDir || !path.basename(argv0).startsWith('ferretdb')) {
    await rm(pidFile, { force: true });
    return;
  }
  log(`stopping a FerretDB (pid ${pid}) left running on ${dataDir} by an earlier process`);
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 40 && isAlive(pid); i++) await sleep(50);
  await rm(pidFile, { force: true });
}
