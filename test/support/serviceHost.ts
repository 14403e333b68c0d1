/**
 * Test doubles for agent/service (install and uninstall): a recording command runner, an
 * in-memory file system, a host with everything injected and an account backend that logs
 * each call. Nothing here touches the machine.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AccountError, type AccountBackend, type AccountInfo } from '../../agent/os/backend.ts';
import type { RunResult, Runner } from '../../agent/os/exec.ts';
import type { Payload, ServiceFiles, ServiceHost, ServicePlatform } from '../../agent/service/host.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WIN_ENV = { ProgramData: 'C:\\ProgramData', ProgramFiles: 'C:\\Program Files', SystemRoot: 'C:\\Windows' };
export const WIN_NODE = 'C:\\Users\\dev\\node\\node.exe';
export const WIN_REPO = 'C:\\jit access\\repo';

export interface Recorded {
  /** Every command, in order, as [file, ...argv]. Shared with a recording backend when given. */
  log: string[][];
  run: Runner;
}

/**
 * What install's library check reads, as a machine with a system node would answer: ldd (Linux)
 * and dyld's DYLD_PRINT_LIBRARIES (macOS) listing system libraries only.
 */
export function systemAnswers(argv: string[]): Partial<RunResult> | undefined {
  if (argv[0] !== '/usr/bin/env') return undefined;
  if (argv.includes('/usr/bin/ldd')) return { stdout: '\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f00)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f01)\n' };
  if (argv.includes('DYLD_PRINT_LIBRARIES=1')) return { stderr: `dyld[501]: <6A1F> ${argv[3]}\ndyld[501]: <0B2C> /usr/lib/libc++.1.dylib\ndyld[501]: <77D0> /usr/lib/libSystem.B.dylib\n` };
  return undefined;
}

/** Records instead of running; `answer` gives a result for some commands (then systemAnswers; default: exit 0). */
export function recorder(answer: (argv: string[]) => Partial<RunResult> | undefined = () => undefined, log: string[][] = []): Recorded {
  const run: Runner = async (file, argv, opts = {}) => {
    log.push([file, ...argv]);
    const result: RunResult = { code: 0, stdout: '', stderr: '', ...(answer([file, ...argv]) ?? systemAnswers([file, ...argv])) };
    if (!(opts.okCodes ?? [0]).includes(result.code)) throw new Error(`${file} exited ${result.code}`);
    return result;
  };
  return { log, run };
}

export type MemoryFiles = ServiceFiles & {
  files: Map<string, { text: string; mode: number }>;
  dirs: Map<string, number>;
  /** Copies done, as "from -> to". */
  copies: string[];
  /** Paths (Unix) whose trust check fails, with the reason. */
  untrusted: Map<string, string>;
};

/** An in-memory file system: files with their modes, folders with theirs. */
export function memoryFiles(initial: Record<string, string> = {}): MemoryFiles {
  const files = new Map(Object.entries(initial).map(([k, text]) => [k, { text, mode: 0o600 }]));
  const dirs = new Map<string, number>();
  const copies: string[] = [];
  const untrusted = new Map<string, string>();
  const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`) || p.startsWith(`${dir}\\`);
  const moveAll = <T>(m: Map<string, T>, from: string, to: string) => {
    for (const [k, v] of [...m]) {
      if (!under(k, from)) continue;
      m.delete(k);
      m.set(to + k.slice(from.length), v);
    }
  };
  return {
    files,
    dirs,
    copies,
    untrusted,
    exists: async (f) => files.has(f) || dirs.has(f),
    read: async (f) => {
      const e = files.get(f);
      if (!e) throw new Error(`ENOENT ${f}`);
      return e.text;
    },
    trustProblem: async (p) => untrusted.get(p) ?? null,
    makeSecureDir: async (d, mode) => void dirs.set(d, mode),
    write: async (f, text, mode) => void files.set(f, { text, mode }),
    copyPayload: async (payload, dest, p) => {
      dirs.set(dest, dirs.get(dest) ?? 0o700);
      for (const item of payload.items) {
        const to = p.join(dest, ...item.to.split('/'));
        copies.push(`${item.from} -> ${to}`);
        files.set(to, { text: `copy of ${item.from}`, mode: item.executable ? 0o755 : 0o644 });
      }
    },
    verifyTree: async () => [],
    rename: async (from, to) => {
      moveAll(files, from, to);
      moveAll(dirs, from, to);
    },
    removeTree: async (d) => {
      for (const k of [...files.keys()]) if (under(k, d)) files.delete(k);
      for (const k of [...dirs.keys()]) if (under(k, d)) dirs.delete(k);
    },
    remove: async (f) => files.delete(f),
    removeDirIfEmpty: async (d) => {
      if (![...files.keys()].some((k) => k !== d && under(k, d))) dirs.delete(d);
    },
  };
}

/** A host for `platform` with everything recorded or in memory; `over` replaces parts. */
export function host(platform: ServicePlatform, over: Partial<ServiceHost> = {}): ServiceHost & { printed: string[] } {
  const printed: string[] = [];
  return {
    platform,
    env: platform === 'win32' ? WIN_ENV : {},
    run: recorder().run,
    files: memoryFiles(),
    isPrivileged: async () => true,
    print: (l) => void printed.push(l),
    backend: async () => fakeBackend([]).backend,
    sleep: async () => {},
    nodePath: platform === 'win32' ? WIN_NODE : process.execPath,
    repoDir: platform === 'win32' ? WIN_REPO : REPO,
    payload: async () => smallPayload(platform, over.nodePath ?? (platform === 'win32' ? WIN_NODE : process.execPath)),
    // Never this machine's /usr/local/bin: next to the test's runtime folder when it has one.
    commandPath: over.installDir && platform !== 'win32' ? path.join(path.dirname(over.installDir), 'bin', 'jit') : '/usr/local/bin/jit',
    ...over,
    printed,
  };
}

/** A stand-in for planPayload: node, the agent's entry point and the runtime package.json. */
export function smallPayload(platform: ServicePlatform, node: string, main = '/repo/dist/agent/main.js'): Payload {
  return {
    items: [
      { from: node, to: platform === 'win32' ? 'node.exe' : 'bin/node', executable: true },
      { from: main, to: 'dist/agent/main.js', executable: false },
      { text: '{"type":"module"}', to: 'package.json', executable: false },
    ],
    bytes: 3,
    packages: [],
    sizes: { node: 1, agent: 1, packages: 0 },
  };
}

export interface FakeBackend {
  backend: AccountBackend;
  accounts: Map<string, AccountInfo>;
  listed(): number;
}

/**
 * A backend holding `names` (all managed and enabled); every call that changes something is
 * appended to `log` as [method, name] (purge: [purge, name, id]; dropMarker: [dropMarker]).
 * `failDelete` names an account whose delete fails (LOGGED_IN).
 */
export function fakeBackend(names: string[], log: string[][] = [], failDelete?: string): FakeBackend {
  const accounts = new Map(names.map((n, i) => [n, { name: n, id: String(5000 + i), enabled: true, managed: true, groups: [] } as AccountInfo]));
  let listed = 0;
  const backend: AccountBackend = {
    os: 'fake',
    uidRange: { min: 5000, max: 5999 },
    backstopSurvivesReboot: true,
    lookup: async (n) => accounts.get(n) ?? null,
    createDisabled: async () => {
      throw new Error('not here');
    },
    setGroups: async () => {},
    armBackstop: async () => 'expiry-only',
    disarmBackstop: async () => {},
    enable: async (n) => {
      log.push(['enable', n]);
      const a = accounts.get(n);
      if (a) a.enabled = true;
    },
    disable: async (n) => {
      log.push(['disable', n]);
      const a = accounts.get(n);
      if (a) a.enabled = false;
    },
    setPassword: async () => {},
    logoff: async (n) => {
      log.push(['logoff', n]);
      if (!accounts.has(n)) throw new AccountError('NOT_FOUND', n);
      return { ended: 1 };
    },
    delete: async (n) => {
      log.push(['delete', n]);
      if (n === failDelete) throw new AccountError('LOGGED_IN', `${n} is still logged in`);
      accounts.delete(n);
    },
    purge: async (a) => void log.push(['purge', a.name, a.id]),
    listManaged: async () => {
      listed++;
      return [...accounts.values()].map((a) => ({ ...a }));
    },
    dropMarker: async () => {
      log.push(['dropMarker']);
      if (accounts.size) throw new AccountError('COMMAND_FAILED', `jit-managed still has ${accounts.size} member(s)`);
    },
  };
  return { backend, accounts, listed: () => listed };
}

export const enrollSpy = () => {
  const calls: string[] = [];
  return { calls, enroll: async (f: string) => void calls.push(f) };
};

/** Runs a program for real and collects its output (never throws on a non-zero exit). */
export function capture(file: string, argv: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
