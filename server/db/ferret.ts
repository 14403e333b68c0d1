/**
 * The embedded database: FerretDB 1.24.2 (MongoDB wire protocol) on SQLite files,
 * built from source with Go on first use and run as a child process on 127.0.0.1.
 *
 * Used when MONGODB_URI is not set (dev, tests, demo). Known FerretDB limits that
 * the rest of the code must live with: findAndModify is not atomic (see agenda.ts),
 * no change streams, no TTL or partial indexes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { chmod, cp, mkdir, readFile, readdir, readlink, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { freePort } from './ports.ts';

export const FERRETDB_VERSION = 'v1.24.2';
/** Names our build of it: the release plus the one patch below (see patchIdLookups). */
const BUILD_ID = `${FERRETDB_VERSION}-idindex`;
const MODULE = 'github.com/FerretDB/FerretDB';

export type Log = (msg: string) => void;
const quiet: Log = () => {};

const NO_GO =
  'The embedded database (FerretDB) is compiled from source on first use, and that needs Go >= 1.21 ' +
  '(it fetches the Go 1.24 toolchain FerretDB asks for by itself): install Go from https://go.dev/dl/ and retry, ' +
  'or set MONGODB_URI to use an existing MongoDB instead.';

/** Where the built binary is cached: $XDG_CACHE_HOME or ~/.cache, then jit-access/ferretdb-v1.24.2-idindex/. */
export function ferretCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'jit-access', `ferretdb-${BUILD_ID}`);
}

/**
 * Path of a working FerretDB binary: $JIT_FERRETDB_BIN if set, else the cached build,
 * else builds it into the cache (about a minute, once per machine).
 */
export async function ensureFerretDB(log: Log = quiet): Promise<string> {
  const fromEnv = process.env.JIT_FERRETDB_BIN;
  if (fromEnv) {
    const problem = await binaryProblem(fromEnv);
    if (problem) throw new Error(`JIT_FERRETDB_BIN=${fromEnv} is not a working FerretDB binary: ${problem}`);
    return fromEnv;
  }

  const dir = ferretCacheDir();
  const bin = path.join(dir, 'ferretdb');
  // Why check the cached binary by running it, not just by its presence: a binary built
  // without build/version/version.txt exists but panics at start (see build()).
  if (!(await binaryProblem(bin))) return bin;

  const go = await goVersion();
  if (!go) throw new Error(NO_GO);
  if (!atLeast(go, [1, 21])) throw new Error(`Found ${go.raw}. ${NO_GO}`);

  await mkdir(dir, { recursive: true });
  const release = await acquireLock(path.join(dir, 'build.lock'), log);
  try {
    if (!(await binaryProblem(bin))) return bin; // another process built it while we waited
    await build(dir, bin, log);
    return bin;
  } finally {
    await release();
  }
}

/** Why a file is not a usable FerretDB binary, or null when `--version` runs fine. */
async function binaryProblem(bin: string): Promise<string | null> {
  try {
    await stat(bin);
  } catch {
    return 'no such file';
  }
  const r = await run(bin, ['--version'], { timeoutMs: 15_000 });
  if (r.code === 0 && /^version: v\d/m.test(r.stdout)) return null;
  return `\`${bin} --version\` failed (${r.error ?? `exit ${r.code}`}): ${tail(r.stderr || r.stdout, 600)}`;
}

const ID_COLUMN_FILE = 'internal/backends/sqlite/metadata/metadata.go';
const ID_COLUMN_RELEASED = `IDColumn = DefaultColumn + "->'$._id'"`;
const ID_COLUMN_INDEXED = `IDColumn = DefaultColumn + "->'_id'"`;

/**
 * The one change we make to FerretDB's source. Why: 1.24.2's SQLite backend
 * creates every collection's unique _id index on `_ferretdb_sjson->"_id"` but
 * looks documents up by `_ferretdb_sjson->'$._id'`. SQLite uses an expression
 * index only for the same expression, so that index is never used and every
 * find, update and delete by _id scans the table (`EXPLAIN QUERY PLAN` says
 * SCAN; measured: updateOne by _id 2 ms with 10 documents, 37 ms with 10,000).
 * `->'_id'` is the same JSON lookup written the index's way (SEARCH … USING INDEX).
 */
async function patchIdLookups(src: string): Promise<void> {
  const file = path.join(src, ID_COLUMN_FILE);
  const text = await readFile(file, 'utf8');
  if (!text.includes(ID_COLUMN_RELEASED)) throw new Error(`FerretDB source changed: ${ID_COLUMN_FILE} has no ${ID_COLUMN_RELEASED}`);
  await writeFile(file, text.replace(ID_COLUMN_RELEASED, ID_COLUMN_INDEXED));
}

async function build(dir: string, bin: string, log: Log): Promise<void> {
  const t0 = Date.now();
  log(`Building FerretDB ${FERRETDB_VERSION} (the embedded database) with Go into ${dir}: one time only, about a minute…`);

  // Why not `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`: it also asks the
  // module proxy for the module's version list (a deprecation check), which some proxies refuse
  // with 403. `go mod download` of the exact version + `go build` in that source does not.
  // GOWORK=off / fixed GOFLAGS: a go.work or GOFLAGS=-mod=vendor of the caller must not leak in.
  const env = goEnv();
  // Leftovers of builds that were killed (we hold the lock, so none is running).
  for (const name of await readdir(dir)) {
    if (name.startsWith('tmp-')) {
      await makeWritable(path.join(dir, name)).catch(() => {});
      await rm(path.join(dir, name), { recursive: true, force: true });
    }
  }
  const scratch = path.join(dir, `tmp-${process.pid}-${Date.now()}`);
  await mkdir(scratch, { recursive: true });
  const heartbeat = setInterval(() => log(`…still building FerretDB (${Math.round((Date.now() - t0) / 1000)} s)`), 15_000);
  try {
    log('  downloading the FerretDB module source (go mod download)…');
    const dl = await run('go', ['mod', 'download', '-json', `${MODULE}@${FERRETDB_VERSION}`], { cwd: scratch, env });
    let info: { Dir?: string; Error?: string } = {};
    try {
      info = JSON.parse(dl.stdout) as typeof info;
    } catch {
      /* reported below */
    }
    if (dl.code !== 0 || !info.Dir) {
      throw new Error(`go mod download ${MODULE}@${FERRETDB_VERSION} failed: ${info.Error ?? tail(dl.stderr || dl.stdout, 2000)}`);
    }

    // The module cache is read-only (and `go build -overlay` refuses to replace files in it),
    // so we build from a writable copy of the source (~3.5 MB).
    const src = path.join(scratch, 'src');
    await cp(info.Dir, src, { recursive: true });
    await makeWritable(src);
    // Why: FerretDB's build/version package panics at start ("Invalid build/version/version.txt
    // file content") unless version.txt names the version. Its release tooling generates that
    // file from git; the module zip does not carry it.
    await writeFile(path.join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);
    await patchIdLookups(src);

    log('  compiling (go build ./cmd/ferretdb)…');
    // Build to a temporary name and rename: rename is atomic, so a killed or failed build
    // never leaves a half-written `ferretdb` that a later run would pick up.
    const tmpBin = path.join(scratch, 'ferretdb');
    // CGO_ENABLED=0: FerretDB's SQLite driver is pure Go; without cgo no C compiler is needed
    // and the binary is static.
    const b = await run('go', ['build', '-trimpath', '-o', tmpBin, './cmd/ferretdb'], { cwd: src, env: { ...env, CGO_ENABLED: '0' } });
    if (b.code !== 0) {
      const hint = /requires go >=|toolchain/i.test(b.stderr) ? ' (FerretDB needs the Go 1.24 toolchain: install Go >= 1.24, or allow Go to fetch it with GOTOOLCHAIN=auto)' : '';
      throw new Error(`go build of FerretDB ${FERRETDB_VERSION} failed${hint}: ${tail(b.stderr || b.stdout, 3000)}`);
    }
    const problem = await binaryProblem(tmpBin);
    if (problem) throw new Error(`the FerretDB binary just built does not run: ${problem}`);
    await rename(tmpBin, bin);
    log(`FerretDB ${BUILD_ID} built in ${Math.round((Date.now() - t0) / 1000)} s: ${bin}`);
  } finally {
    clearInterval(heartbeat);
    await makeWritable(scratch).catch(() => {});
    await rm(scratch, { recursive: true, force: true });
  }
}

function goEnv(): NodeJS.ProcessEnv {
  // -buildvcs=false: the copied source is not a git checkout (and may sit inside someone
  // else's repository, whose VCS stamp would be wrong or make the build fail).
  return { ...process.env, GOWORK: 'off', GO111MODULE: 'on', GOFLAGS: '-buildvcs=false' };
}

async function goVersion(): Promise<{ raw: string; major: number; minor: number } | null> {
  const r = await run('go', ['env', 'GOVERSION'], { timeoutMs: 60_000 });
  if (r.error === 'ENOENT') return null;
  const raw = r.stdout.trim();
  const m = /^go(\d+)\.(\d+)/.exec(raw);
  if (r.code !== 0 || !m) return null;
  return { raw, major: Number(m[1]), minor: Number(m[2]) };
}

function atLeast(v: { major: number; minor: number }, [major, minor]: [number, number]): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** Module-cache files and folders are read-only; make a copy writable and removable. */
async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await makeWritable(p);
    else if (e.isFile()) await chmod(p, 0o644);
  }
}

/**
 * A lock folder (mkdir is atomic) so two processes (say two test runs started at once)
 * do not both spend a minute building. It is only an optimisation: each build works in
 * its own folder and renames its result into place, so even two concurrent builds leave
 * one whole binary. A lock whose owner died (pid gone on this host) or that is older than
 * 15 minutes is taken over.
 */
async function acquireLock(lock: string, log: Log): Promise<() => Promise<void>> {
  const ownerFile = path.join(lock, 'owner.json');
  let announced = false;
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(ownerFile, JSON.stringify({ pid: process.pid, host: os.hostname(), at: Date.now() }));
      return () => rm(lock, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = await readFile(ownerFile, 'utf8')
      .then((s) => JSON.parse(s) as { pid: number; host: string; at: number })
      .catch(() => null);
    const age = owner ? Date.now() - owner.at : Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
    const ownerGone = owner !== null && owner.host === os.hostname() && !isAlive(owner.pid);
    if (ownerGone || age > 15 * 60_000) {
      log(`taking over a stale FerretDB build lock ${lock}`);
      await rm(lock, { recursive: true, force: true });
      continue;
    }
    if (!announced) {
      log(`waiting for another process (pid ${owner?.pid ?? '?'}) that is building FerretDB…`);
      announced = true;
    }
    await sleep(500);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  error?: string;
}

function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], timeout: o.timeoutMs });
    } catch (err) {
      resolve({ code: null, stdout, stderr, error: (err as NodeJS.ErrnoException).code ?? String(err) });
      return;
    }
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr = tail(stderr + d.toString(), 20_000)));
    child.once('error', (err: NodeJS.ErrnoException) => resolve({ code: null, stdout, stderr, error: err.code ?? err.message }));
    child.once('close', (code, signal) => resolve({ code, stdout, stderr, ...(signal ? { error: `killed by ${signal}` } : {}) }));
  });
}

function tail(s: string, n: number): string {
  return s.length > n ? `…${s.slice(-n)}` : s;
}

// ---------------------------------------------------------------------------------------
// Running it

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
}

const PIDFILE = 'ferretdb.pid';

// Why kill children on 'exit': FerretDB is a separate OS process and Node does not end its
// children when it exits. Without this, a parent that exits without calling stop() (a thrown
// error, process.exit(), mocha --exit) leaves a ferretdb running forever, holding its port
// and the SQLite files; a later start on the same data folder would then put a second
// FerretDB on the same files, and FerretDB caches metadata assuming it is the only one.
// Only synchronous work is possible in an 'exit' handler, hence SIGKILL and rmSync.
// 'exit' does not run when the parent dies from SIGKILL or from a signal it does not handle
// (a plain `kill PID` of a server with no SIGTERM handler): the pid file below lets the
// next start on the same folder find and end such an orphan.
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
  const child = spawn(bin, args, { cwd: dataDir, env, stdio: ['ignore', 'ignore', 'pipe'] });
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
