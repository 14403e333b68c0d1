/**
 * What install and uninstall work with: the host (everything that touches the machine, so
 * tests inject a recording command runner, an in-memory file system, a fake privilege check and
 * a sandboxed backend), and where things go on each OS.
 *
 * WHERE THINGS GO. The service never runs anything from where `install` found it (a Homebrew
 * node the admin user owns, a checkout under C:\ that any user may change): node and the built
 * agent are copied into a folder only root (SYSTEM and Administrators on Windows) can change,
 * and the service definition names only that folder.
 *
 * | OS      | runtime (node, dist/, node_modules/)              | state, key (and log on Windows)      |
 * | ------- | ------------------------------------------------- | ------------------------------------ |
 * | Linux   | /opt/jit-agent                                    | /var/lib/jit-agent                   |
 * | macOS   | /Library/Application Support/jit-agent/runtime    | /Library/Application Support/jit-agent |
 * | Windows | %ProgramFiles%\jit-agent (also the service host)  | %ProgramData%\jit-agent              |
 */
import path from 'node:path';
import type { AccountBackend } from '../os/backend.ts';
import type { Runner } from '../os/exec.ts';
import { windowsLayout } from './windows.ts';

export type ServicePlatform = 'linux' | 'darwin' | 'win32';

/** One file of the runtime copy: `to` is relative to the runtime folder, with "/" separators. */
export interface PayloadItem {
  /** Absolute source path; absent when `text` is the content. */
  from?: string;
  text?: string;
  to: string;
  executable: boolean;
}

/** What install copies into the runtime folder (agent/service/payload.ts builds it). */
export interface Payload {
  items: PayloadItem[];
  bytes: number;
  /** node_modules packages copied, as paths relative to node_modules. */
  packages: string[];
  /** Bytes of node, of dist/ and of the packages. */
  sizes: { node: number; agent: number; packages: number };
}

/** The file operations install and uninstall need (tests substitute an in-memory one). */
export interface ServiceFiles {
  exists(file: string): Promise<boolean>;
  read(file: string): Promise<string>;
  /**
   * Unix: null when `p` and every folder above it can only be changed by root (or `p` is
   * missing and its parents are), else why not. A link at `p` is refused, or with
   * `followLinks` checked with its target (shared libraries are links to versioned files).
   */
  trustProblem(p: string, o?: { followLinks?: boolean }): Promise<string | null>;
  /** Unix: creates `dir` (and parents, 0755) owned by root with exactly `mode`, then checks it. */
  makeSecureDir(dir: string, mode: number): Promise<void>;
  /** Writes `text` with exactly `mode`, owned by root (root:wheel on macOS) when we are root. */
  write(file: string, text: string, mode: number): Promise<void>;
  /** Copies every item into `dest` (an existing, empty, secured folder), owned by root. */
  copyPayload(payload: Payload, dest: string, p: path.PlatformPath): Promise<void>;
  /** Unix: what in the tree is not root's alone (owner, group/other write, links); [] when all is. */
  verifyTree(dir: string): Promise<string[]>;
  rename(from: string, to: string): Promise<void>;
  /** Removes a folder and everything in it (a link is removed, never followed). */
  removeTree(dir: string): Promise<void>;
  /** Removes a file; false when it was not there. */
  remove(file: string): Promise<boolean>;
  /** Removes a folder if it is empty; leaves it otherwise. */
  removeDirIfEmpty(dir: string): Promise<void>;
}

export interface ServiceHost {
  platform: ServicePlatform;
  env: NodeJS.ProcessEnv;
  /** Runs service commands (systemctl, launchctl, sc.exe…). */
  run: Runner;
  files: ServiceFiles;
  /** root (uid 0) on Linux and macOS, an elevated Administrator on Windows. */
  isPrivileged(): Promise<boolean>;
  print(line: string): void;
  /** The account backend, on the state's sandbox root if it has one. */
  backend(sandboxRoot: string | undefined): Promise<AccountBackend>;
  sleep(ms: number): Promise<void>;
  /** The node executable to copy into the runtime folder (the one running install). */
  nodePath: string;
  /** The repository holding the built agent (dist/agent/main.js) and node_modules. */
  repoDir: string;
  /** What to copy into the runtime folder (default: planPayload on repoDir and nodePath; tests give a small one). */
  payload?(): Promise<Payload>;
  /** Where the unit or plist goes (default: the OS's place; tests point it elsewhere). */
  definitionPath?: string;
  /** The runtime folder (default: runtimeDir; tests point it elsewhere). */
  installDir?: string;
  /** Where the `jit` command for the person at the endpoint goes (default: JIT_COMMAND_PATH; tests point it elsewhere). */
  commandPath?: string;
}

export class NotPrivilegedError extends Error {
  constructor(command: string, platform: ServicePlatform) {
    super(
      platform === 'win32'
        ? `${command} must run as Administrator (an elevated prompt): it registers a service and deletes local accounts`
        : `${command} must run as root (sudo): it writes the service definition and deletes local accounts`,
    );
    this.name = 'NotPrivilegedError';
  }
}

/**
 * V8 flags of the service's node, which keep an idle agent under 60 MB RSS at ~0.1 % of a core
 * (measured on Linux with Node 20; without them 60-70 MB, with spikes to 90):
 * - --no-wasm-tier-up --no-wasm-dynamic-tiering: fetch parses HTTP with undici's llhttp, in
 *   WebAssembly, and V8 recompiles it with TurboFan on a worker thread after a while: ~30 MB of
 *   compiler memory for a moment, of which malloc keeps ~9 MB for good. The baseline compiler
 *   (Liftoff) is plenty for a few responses a minute. (Same effect as --liftoff-only, which V8
 *   documents as a testing flag.)
 * - --optimize-for-size: a smaller heap, shrunk sooner (~1 MB less).
 * - --no-opt: no TurboFan for JavaScript either (~1 MB less); none of the agent's code is hot.
 */
export const AGENT_NODE_FLAGS = ['--no-wasm-tier-up', '--no-wasm-dynamic-tiering', '--optimize-for-size', '--no-opt'];

/** Where the state file lives unless --state says otherwise. */
export function defaultStateFile(platform: ServicePlatform, env: NodeJS.ProcessEnv = process.env): string {
  if (platform === 'win32') return path.win32.join(windowsLayout(env).programDir, 'state.json');
  if (platform === 'darwin') return '/Library/Application Support/jit-agent/state.json';
  return '/var/lib/jit-agent/state.json';
}

/** The runtime folder: node, dist/ and node_modules/ (and the Windows service host). */
export function runtimeDir(platform: ServicePlatform, env: NodeJS.ProcessEnv = process.env): string {
  if (platform === 'win32') return windowsLayout(env).runtimeDir;
  if (platform === 'darwin') return '/Library/Application Support/jit-agent/runtime';
  return '/opt/jit-agent';
}

/** The `jit` command on the PATH of every user (Linux and macOS; none on Windows yet). */
export const JIT_COMMAND_PATH = '/usr/local/bin/jit';

/**
 * The `jit` command: a shell script that runs the runtime's node on the runtime's jit.js (the
 * person's own process: no root, talks only to the agent's socket, docs/endpoint-users.md).
 */
export function renderJitCommand(runtime: string): string {
  if (runtime.includes("'")) throw new Error(`the runtime folder ${runtime} contains a quote: not supported`);
  const node = path.posix.join(runtime, nodeInRuntime('linux'));
  const jit = path.posix.join(runtime, 'dist', 'agent', 'jit.js');
  return `#!/bin/sh\n# jit: time left, end early, ask for access (installed by jit-agent install, removed by its uninstall)\nexec '${node}' '${jit}' "$@"\n`;
}

/** node inside the runtime folder, relative with "/". */
export function nodeInRuntime(platform: ServicePlatform): string {
  return platform === 'win32' ? 'node.exe' : 'bin/node';
}

/** The service's command: the runtime's node, the V8 flags, the runtime's dist/agent/main.js. */
export function serviceArgv(platform: ServicePlatform, dir: string, stateFile: string): string[] {
  const p = platform === 'win32' ? path.win32 : path.posix;
  return [p.join(dir, ...nodeInRuntime(platform).split('/')), ...AGENT_NODE_FLAGS, p.join(dir, 'dist', 'agent', 'main.js'), 'run', '--state', stateFile];
}
