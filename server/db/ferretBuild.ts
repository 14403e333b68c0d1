/**
 * Getting the embedded database's binary: FerretDB 1.24.2 built from source with
 * Go on first use (with one patch), cached per machine. Running it is ferret.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, cp, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const FERRETDB_VERSION = 'v1.24.2';
/** Names our build of it: the release plus the one patch below (see patchIdLookups). */
const BUILD_ID = `${FERRETDB_VERSION}-idindex`;
const MODULE = 'github.com/FerretDB/FerretDB';

export type Log = (msg: string) => void;
export const quiet: Log = () => {};

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

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  error?: string;
}

export function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
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

export function tail(s: string, n: number): string {
  return s.length > n ? `…${s.slice(-n)}` : s;
}
