/**
 * The embedded database: FerretDB 1.24.2 (MongoDB wire protocol) on SQLite,
 * built with Go on first use and run on a loopback port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient } from 'mongodb';
import { freePort } from './ports.ts';

export const FERRETDB_VERSION = 'v1.24.2';
const MODULE = 'github.com/FerretDB/FerretDB';

type Log = (msg: string) => void;

function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'jit-access', `ferretdb-${FERRETDB_VERSION}`);
}

/** Path of a FerretDB binary, building it when there is none yet. */
export async function ensureFerretDB(log: Log = () => {}): Promise<string> {
  if (process.env.JIT_FERRETDB_BIN) return process.env.JIT_FERRETDB_BIN;
  const bin = path.join(cacheDir(), 'ferretdb');
  if (existsSync(bin)) return bin;
  if (spawnSync('go', ['version']).error) {
    throw new Error(
      'the embedded database (FerretDB) is built with Go, and `go` was not found: install Go ≥ 1.21, or set MONGODB_URI to use an existing MongoDB',
    );
  }
  await mkdir(cacheDir(), { recursive: true });
  const lock = path.join(cacheDir(), 'build.lock');
  await acquire(lock);
  try {
    if (existsSync(bin)) return bin; // another process built it while we waited
    log(`building FerretDB ${FERRETDB_VERSION} with Go into ${cacheDir()} (about a minute, once)…`);
    // Why not `go install …@v1.24.2`: it also asks the module proxy for the module's version
    // list (to check for deprecation), which some proxies refuse; download + build does not.
    const dl = goRun(['mod', 'download', '-json', `${MODULE}@${FERRETDB_VERSION}`], process.cwd());
    const src = await mkdtemp(path.join(os.tmpdir(), 'ferretdb-src-'));
    try {
      await cp((JSON.parse(dl) as { Dir: string }).Dir, src, { recursive: true });
      await chmod(path.join(src, 'build', 'version'), 0o755);
      // Why: FerretDB panics at start unless build/version/version.txt names the version;
      // its release tooling writes that file, the module source does not carry it.
      await writeFile(path.join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);
      const tmp = `${bin}.${process.pid}.tmp`;
      goRun(['build', '-o', tmp, './cmd/ferretdb'], src);
      await rename(tmp, bin); // atomic: a killed build never leaves a half binary behind
    } finally {
      await rm(src, { recursive: true, force: true });
    }
    log('FerretDB built');
    return bin;
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

function goRun(args: string[], cwd: string): string {
  const r = spawnSync('go', args, { cwd, encoding: 'utf8', env: { ...process.env, GOFLAGS: '-buildvcs=false' }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`go ${args[0]} failed: ${(r.stderr || r.error?.message || '').trim().slice(-2000)}`);
  return r.stdout;
}

/** A lock folder; a stale one (a build killed long ago) is taken over after 10 minutes. */
async function acquire(lock: string): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      await mkdir(lock);
      return;
    } catch {
      if (Date.now() - started > 10 * 60_000) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      await sleep(500);
    }
  }
}

export interface EmbeddedDb {
  uri: string;
  port: number;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// Why: FerretDB is our child; if this process exits without stop(), it must not live on holding the port.
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** Starts FerretDB on 127.0.0.1 with SQLite files in `dataDir`, and waits until it answers. */
export async function startFerretDB(opts: { dataDir: string; port?: number; log?: Log }): Promise<EmbeddedDb> {
  const bin = await ensureFerretDB(opts.log);
  await mkdir(opts.dataDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const child = spawn(
    bin,
    [
      '--handler=sqlite',
      `--sqlite-url=file:${opts.dataDir.replace(/\/?$/, '/')}`,
      `--listen-addr=127.0.0.1:${port}`,
      `--state-dir=${opts.dataDir}`,
      '--telemetry=disable',
      '--debug-addr=-',
      '--log-level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  running.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => (running.delete(child), resolve())));
  const uri = `mongodb://127.0.0.1:${port}/`;
  await waitReady(uri, child, () => stderr);
  return {
    uri,
    port,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

async function waitReady(uri: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited with ${child.exitCode}: ${stderr()}`);
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 500 });
    try {
      await client.db('admin').command({ ping: 1 });
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`FerretDB did not answer within 30 s: ${(err as Error).message}\n${stderr()}`);
      }
      await sleep(100);
    } finally {
      await client.close();
    }
  }
}
