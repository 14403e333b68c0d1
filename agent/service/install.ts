/**
 * `jit-agent install` and `jit-agent uninstall`: the agent as a boot-time service that
 * restarts on failure, per OS (systemd.ts, launchd.ts, windows.ts render the definitions).
 *
 * Every step is printed before it is done; with `dryRun` steps are only printed. Read-only
 * probes still run in a dry run (does a file exist, `sc.exe query`, the list of managed
 * accounts), so that the printed plan is the one a real run would follow.
 *
 * Both refuse to run, before anything else, without root (Administrator on Windows).
 *
 * Uninstall removes every account the agent still manages FIRST, while the service keeps
 * running: if removal fails, nothing else is touched and the agent goes on ending grants.
 * Then it stops and removes the service, checks the accounts once more (the agent may have
 * created one between the first pass and its stop), and deletes the state and key files.
 *
 * Everything that touches the machine comes through `ServiceHost`, so tests inject a recording
 * command runner, an in-memory file system, a fake privilege check and a sandboxed backend.
 */
import { chmod, chown, mkdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AccountError, type AccountBackend } from '../os/backend.ts';
import { run as defaultRun, type RunResult, type Runner } from '../os/exec.ts';
import { backendForThisOs } from '../os/select.ts';
import { AgentState } from '../state.ts';
import { LAUNCHD_PLIST_PATH, launchdInstallCommands, launchdStopCommands, renderLaunchdPlist } from './launchd.ts';
import { SYSTEMD_UNIT_PATH, renderSystemdUnit, systemdForgetCommands, systemdInstallCommands, systemdStopCommands } from './systemd.ts';
import {
  ERROR_SERVICE_DOES_NOT_EXIST,
  ERROR_SERVICE_MARKED_FOR_DELETE,
  ERROR_SERVICE_NOT_ACTIVE,
  buildCommand,
  deleteCommand,
  isStopped,
  lockFolderCommands,
  privilegeProbeCommand,
  queryCommand,
  registerCommands,
  renderBuildScript,
  stopCommand,
  windowsCommandLine,
  windowsLayout,
} from './windows.ts';

export type ServicePlatform = 'linux' | 'darwin' | 'win32';

/** The file operations install and uninstall need (tests substitute an in-memory one). */
export interface ServiceFiles {
  exists(file: string): Promise<boolean>;
  read(file: string): Promise<string>;
  /** Creates the folder (and parents) and makes it private: mode 0700 (Windows: see lockFolderCommands). */
  makePrivateDir(dir: string): Promise<void>;
  /** Writes `text` with exactly `mode`, owned by root (root:wheel on macOS) when we are root. */
  write(file: string, text: string, mode: number): Promise<void>;
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
  /** Absolute node executable the service runs. */
  nodePath: string;
  /** The repository holding the built agent (dist/agent/main.js) and node_modules. */
  repoDir: string;
  /** Where the unit or plist goes (default: the OS's place; tests point it elsewhere). */
  definitionPath?: string;
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

export interface InstallOptions {
  /** Default: the OS's place (defaultStateFile). */
  stateFile?: string;
  dryRun?: boolean;
  /** Shown in the plan. */
  serverUrl: string;
  /** Enrolls with the server and writes the state file (main.ts's enroll). */
  enroll(stateFile: string): Promise<void>;
}

export interface UninstallOptions {
  stateFile?: string;
  dryRun?: boolean;
}

// This file runs as agent/service/install.ts (tsx) or as dist/agent/service/install.js (built).
const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', ...(import.meta.url.endsWith('.js') ? ['..'] : []));

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
function defaultStateFile(platform: ServicePlatform, env: NodeJS.ProcessEnv = process.env): string {
  if (platform === 'win32') return path.win32.join(windowsLayout(env).programDir, 'state.json');
  if (platform === 'darwin') return '/Library/Application Support/jit-agent/state.json';
  return '/var/lib/jit-agent/state.json';
}

function defaultHost(): ServiceHost {
  const platform: ServicePlatform = process.platform === 'win32' ? 'win32' : process.platform === 'darwin' ? 'darwin' : 'linux';
  const host: ServiceHost = {
    platform,
    env: process.env,
    run: defaultRun,
    files: nodeFiles,
    isPrivileged: async () => {
      if (platform !== 'win32') return process.getuid?.() === 0;
      const [file, ...argv] = privilegeProbeCommand(process.env);
      return host.run(file!, argv).then(
        () => true,
        () => false,
      );
    },
    print: (line) => process.stdout.write(`${line}\n`),
    backend: (root) => backendForThisOs(root),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    nodePath: process.execPath,
    repoDir: REPO_DIR,
  };
  return host;
}

// ---------------------------------------------------------------------------------------------
// install
// ---------------------------------------------------------------------------------------------

export async function installAgent(opts: InstallOptions, overrides: Partial<ServiceHost> = {}): Promise<void> {
  const host: ServiceHost = { ...defaultHost(), ...overrides };
  if (!(await host.isPrivileged())) throw new NotPrivilegedError('install', host.platform);
  const steps = new Steps(host, opts.dryRun ?? false, 'install');
  const p = pathFor(host.platform);
  const stateFile = p.resolve(opts.stateFile ?? defaultStateFile(host.platform, host.env));
  // Plain node on the prebuilt JavaScript: compiling TypeScript at run time (tsx) would cost
  // memory for the service's whole life.
  const agentMain = p.join(host.repoDir, 'dist', 'agent', 'main.js');
  if (!(await host.files.exists(agentMain))) throw new Error(`${agentMain} is missing: run npm ci (or npm run build:agent) first`);
  const argv = [host.nodePath, ...AGENT_NODE_FLAGS, agentMain, 'run', '--state', stateFile];
  const stateDirs = [...new Set([p.dirname(stateFile), ...(host.platform === 'win32' ? [windowsLayout(host.env).programDir] : [])])];

  // Render first, so a value that can't go into a unit, plist or command line stops us before any change.
  const definition =
    host.platform === 'linux'
      ? renderSystemdUnit({ argv, workingDirectory: host.repoDir, stateFile })
      : host.platform === 'darwin'
        ? renderLaunchdPlist({ argv, workingDirectory: host.repoDir })
        : renderBuildScript(windowsLayout(host.env).hostExe);

  for (const dir of stateDirs) {
    await steps.act(`create ${dir}, private to ${host.platform === 'win32' ? 'SYSTEM and Administrators' : 'root (mode 0700)'}`, () => host.files.makePrivateDir(dir));
    if (host.platform === 'win32') for (const cmd of lockFolderCommands(dir, host.env)) await steps.command(cmd);
  }
  if (await host.files.exists(stateFile)) {
    steps.say(`keep ${stateFile}: this machine is already enrolled (run "jit-agent uninstall" first to enroll anew)`);
  } else {
    await steps.act(`enroll with ${opts.serverUrl} (one-time token) and write the endpoint credential to ${stateFile}`, () => opts.enroll(stateFile));
  }

  if (host.platform === 'linux') {
    const unit = host.definitionPath ?? SYSTEMD_UNIT_PATH;
    const replacing = await host.files.exists(unit);
    await steps.act(`${replacing ? 'replace' : 'write'} the systemd unit ${unit}`, () => host.files.write(unit, definition, 0o644));
    for (const cmd of systemdInstallCommands(replacing)) await steps.command(cmd);
    steps.done('"systemctl status jit-agent" shows it, "journalctl -u jit-agent" its log');
  } else if (host.platform === 'darwin') {
    const plist = host.definitionPath ?? LAUNCHD_PLIST_PATH;
    const replacing = await host.files.exists(plist);
    await steps.act(`${replacing ? 'replace' : 'write'} the launchd daemon ${plist} (0644 root:wheel, else launchd ignores it)`, () => host.files.write(plist, definition, 0o644));
    for (const cmd of launchdInstallCommands(plist, replacing)) await steps.command(cmd, replacing && cmd[1] === 'bootout' ? LAUNCHCTL_BOOTOUT_OK : undefined);
    steps.done('"launchctl print system/com.jit-access.agent" shows it, /Library/Logs/jit-agent.log is its log');
  } else {
    const layout = windowsLayout(host.env);
    const replacing = await windowsServiceExists(host, steps);
    if (replacing) await stopWindowsService(host, steps);
    await steps.act(`write the service host's build script ${layout.buildScript}`, () => host.files.write(layout.buildScript, `\uFEFF${definition}`, 0o600));
    await steps.command(buildCommand(layout.buildScript, host.env), undefined, `compile the service host ${layout.hostExe} (C# via Add-Type, Windows PowerShell 5.1)`);
    const service = { node: host.nodePath, args: argv.slice(1), workingDirectory: host.repoDir, layout };
    for (const cmd of registerCommands(service, replacing, host.env)) await steps.command(cmd);
    steps.done(`"sc.exe query jit-agent" shows it, ${layout.logFile} is its log`);
  }
}

// ---------------------------------------------------------------------------------------------
// uninstall
// ---------------------------------------------------------------------------------------------

export async function uninstallAgent(opts: UninstallOptions = {}, overrides: Partial<ServiceHost> = {}): Promise<void> {
  const host: ServiceHost = { ...defaultHost(), ...overrides };
  if (!(await host.isPrivileged())) throw new NotPrivilegedError('uninstall', host.platform);
  const dryRun = opts.dryRun ?? false;
  const steps = new Steps(host, dryRun, 'uninstall');
  const p = pathFor(host.platform);
  const stateFile = p.resolve(opts.stateFile ?? defaultStateFile(host.platform, host.env));

  const sandboxRoot = await readSandboxRoot(host, stateFile, steps);
  let backend: AccountBackend;
  try {
    backend = await host.backend(sandboxRoot);
  } catch (e) {
    throw new Error(`cannot reach the local accounts (${errorText(e)}): nothing was changed, the service keeps running`);
  }
  try {
    // 1. Accounts first, with the agent still running: a failure here leaves it in charge.
    await removeManagedAccounts(backend, steps, 'before stopping the service');

    // 2. The service.
    if (host.platform === 'linux') {
      const unit = host.definitionPath ?? SYSTEMD_UNIT_PATH;
      if (await host.files.exists(unit)) {
        for (const cmd of systemdStopCommands()) await steps.command(cmd);
        await steps.act(`remove the systemd unit ${unit}`, () => host.files.remove(unit));
        for (const cmd of systemdForgetCommands()) await steps.command(cmd);
      } else steps.say(`no systemd unit at ${unit}: no service to stop`);
    } else if (host.platform === 'darwin') {
      const plist = host.definitionPath ?? LAUNCHD_PLIST_PATH;
      if (await host.files.exists(plist)) {
        for (const cmd of launchdStopCommands()) await steps.command(cmd, LAUNCHCTL_BOOTOUT_OK);
        await steps.act(`remove the launchd daemon ${plist}`, () => host.files.remove(plist));
      } else steps.say(`no launchd daemon at ${plist}: no service to stop`);
    } else {
      const layout = windowsLayout(host.env);
      if (await windowsServiceExists(host, steps)) {
        await stopWindowsService(host, steps);
        await steps.command(deleteCommand(host.env), [0, ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_MARKED_FOR_DELETE]);
      } else steps.say('no jit-agent service registered: no service to stop');
      for (const f of [layout.hostExe, layout.buildScript]) await steps.act(`remove ${f}`, () => host.files.remove(f));
      steps.say(`keep ${layout.logFile} (the agent's log)`);
    }

    // 3. The agent may have created an account between the first pass and its stop.
    if (dryRun) steps.say('[dry run] would look for managed accounts once more after the stop');
    else await removeManagedAccounts(backend, steps, 'after stopping the service', true);
  } finally {
    await (backend as Partial<{ dispose(): Promise<void> }>).dispose?.().catch(() => {});
  }

  // 4. The state: its credential and the key that seals the SMTP password.
  for (const f of [stateFile, `${stateFile}.key`]) await steps.act(`delete ${f}`, () => host.files.remove(f));
  await steps.act(`remove ${p.dirname(stateFile)} if empty`, () => host.files.removeDirIfEmpty(p.dirname(stateFile)));
  steps.done('the service, every managed account and the state are gone');
}

/**
 * Logs off and deletes every account carrying the agent's ownership marker, printing each.
 * Throws (after trying them all) if any could not be removed.
 */
async function removeManagedAccounts(backend: AccountBackend, steps: Steps, when: string, quietIfNone = false): Promise<void> {
  const accounts = await backend.listManaged();
  if (accounts.length === 0) {
    if (!quietIfNone) steps.say(`no managed account left (${when})`);
    return;
  }
  const failed: string[] = [];
  for (const a of accounts) {
    try {
      await steps.act(`log off and delete managed account ${a.name} (${backend.os === 'windows' ? 'SID' : 'uid'} ${a.id}) ${when}`, async () => {
        // Why tolerate NOT_FOUND: the running agent may be deleting it at this very moment.
        const ended = await backend.logoff(a.name).catch((e: unknown) => {
          if (e instanceof AccountError && e.code === 'NOT_FOUND') return { ended: 0 };
          throw e;
        });
        await backend.delete(a.name);
        steps.say(`  ${a.name}: ${ended.ended} process(es) ended, account and home deleted`);
      });
    } catch (e) {
      failed.push(`${a.name}: ${errorText(e)}`);
    }
  }
  if (failed.length) {
    throw new Error(`could not remove ${failed.length} managed account(s), so the service was left as it is (it keeps ending grants):\n  ${failed.join('\n  ')}`);
  }
}

async function readSandboxRoot(host: ServiceHost, stateFile: string, steps: Steps): Promise<string | undefined> {
  if (!(await host.files.exists(stateFile))) {
    steps.say(`no state file at ${stateFile}: looking for managed accounts all the same`);
    return undefined;
  }
  try {
    const state = AgentState.parse(JSON.parse(await host.files.read(stateFile)));
    if (state.sandboxRoot) steps.say(`the agent works on the sandbox root ${state.sandboxRoot}`);
    return state.sandboxRoot;
  } catch (e) {
    steps.say(`cannot read ${stateFile} (${errorText(e)}): looking for managed accounts on this machine`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Windows service state
// ---------------------------------------------------------------------------------------------

async function windowsServiceExists(host: ServiceHost, steps: Steps): Promise<boolean> {
  const r = await steps.probe(queryCommand(host.env), [0, ERROR_SERVICE_DOES_NOT_EXIST]);
  return r.code === 0;
}

const STOP_WAIT_MS = 60_000;
const STOP_POLL_MS = 1_000;

/** sc.exe stop returns at once (STOP_PENDING): poll sc.exe query until STOPPED. */
async function stopWindowsService(host: ServiceHost, steps: Steps): Promise<void> {
  await steps.command(stopCommand(host.env), [0, ERROR_SERVICE_NOT_ACTIVE, ERROR_SERVICE_DOES_NOT_EXIST]);
  if (steps.dryRun) {
    steps.say('wait until sc.exe query reports STOPPED');
    return;
  }
  const [file, ...argv] = queryCommand(host.env);
  for (let waited = 0; ; waited += STOP_POLL_MS) {
    const r = await host.run(file!, argv, { okCodes: [0, ERROR_SERVICE_DOES_NOT_EXIST] });
    if (r.code === ERROR_SERVICE_DOES_NOT_EXIST || isStopped(r.stdout)) return;
    if (waited >= STOP_WAIT_MS) throw new Error(`the jit-agent service did not stop within ${STOP_WAIT_MS / 1000} s`);
    await host.sleep(STOP_POLL_MS);
  }
}

/**
 * ⚠️ launchctl exit codes from user reports, not documentation: 3 (ESRCH) and 113 "could not
 * find service" when the job is not loaded, 36 (EINPROGRESS) when it is still exiting.
 */
const LAUNCHCTL_BOOTOUT_OK = [0, 3, 36, 113];

// ---------------------------------------------------------------------------------------------
// printing and doing
// ---------------------------------------------------------------------------------------------

class Steps {
  constructor(
    private readonly host: ServiceHost,
    readonly dryRun: boolean,
    private readonly command_: string,
  ) {}

  say(text: string): void {
    this.host.print(`${this.command_}: ${text}`);
  }

  /** The last line: where to look, or that a dry run changed nothing. */
  done(text: string): void {
    this.say(this.dryRun ? 'dry run: nothing was changed' : `done: ${text}`);
  }

  /** Prints what is about to happen, then does it (not in a dry run). */
  async act(what: string, action: () => Promise<unknown>): Promise<void> {
    this.say(this.dryRun ? `[dry run] would ${what}` : what);
    if (!this.dryRun) await action();
  }

  /** A command that changes something: printed, then run (not in a dry run). */
  async command(argv: string[], okCodes?: number[], what?: string): Promise<void> {
    const line = `$ ${displayArgv(argv, this.host.platform)}`;
    await this.act(what ? `${what}\n    ${line}` : line, () => this.host.run(argv[0]!, argv.slice(1), okCodes ? { okCodes } : {}));
  }

  /** A read-only command: printed and run, also in a dry run. */
  async probe(argv: string[], okCodes: number[]): Promise<RunResult> {
    this.say(`check: $ ${displayArgv(argv, this.host.platform)}`);
    return this.host.run(argv[0]!, argv.slice(1), { okCodes });
  }
}

/**
 * For reading only (nothing runs through a shell), quoted so that it can be pasted:
 * the Windows command-line rules on Windows, POSIX shell single quotes elsewhere.
 */
function displayArgv(argv: string[], platform: ServicePlatform): string {
  if (platform === 'win32') return windowsCommandLine(argv);
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function pathFor(platform: ServicePlatform): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------
// the real file system
// ---------------------------------------------------------------------------------------------

const amRoot = (): boolean => process.getuid?.() === 0;

export const nodeFiles: ServiceFiles = {
  exists: (file) => stat(file).then(
    () => true,
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false;
      throw e;
    },
  ),
  read: (file) => readFile(file, 'utf8'),
  async makePrivateDir(dir) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Why chmod as well: mkdir's mode does nothing to a folder that already exists.
    if (process.platform !== 'win32') await chmod(dir, 0o700);
  },
  async write(file, text, mode) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text, { mode });
    if (process.platform !== 'win32') {
      await chmod(file, mode); // writeFile's mode only applies to a new file
      if (amRoot()) await chown(file, 0, 0); // root:root, root:wheel on macOS
    }
  },
  remove: (file) => rm(file).then(
    () => true,
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false;
      throw e;
    },
  ),
  removeDirIfEmpty: (dir) => rmdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (!['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(e.code ?? '')) throw e;
  }),
};
