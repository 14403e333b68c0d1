/**
 * The agent as a Windows service: the service host's source, the PowerShell script that
 * compiles it, and every sc.exe / reg.exe / icacls.exe command. Pure functions:
 * agent/service/install.ts writes the files and runs the commands.
 *
 * WHY A SERVICE HOST. The service control manager (SCM) starts a service's program and waits
 * for it to call StartServiceCtrlDispatcher and report SERVICE_RUNNING; a program that never
 * does (node.exe doesn't) is killed after ~30 s with error 1053. So `sc.exe create … binPath=
 * node.exe …` alone can't work, and neither can PowerShell's New-Service, which is the same
 * CreateService call. Something must speak the SCM protocol and run node as its child.
 *
 * CHOICE: a ~100-line C# ServiceBase host (SERVICE_HOST_SOURCE in windowsHost.ts), compiled on the
 * machine at install time by Windows PowerShell 5.1's Add-Type (the .NET Framework C#
 * compiler ships with every Windows that has PowerShell 5.1), then registered with sc.exe.
 * - No third-party binary runs as SYSTEM (WinSW or NSSM would: a download we can't verify
 *   here, or a vendored .exe), and the source is in this file, reviewable.
 * - The host reads what to run from the service's own registry key
 *   (HKLM\SYSTEM\CurrentControlSet\Services\jit-agent\Parameters: Application,
 *   AppParameters, AppDirectory, AppLog; the srvany convention), written by reg.exe, so the
 *   compiled program is the same on every machine and every value is a recorded argv.
 * - Restart: when node exits unexpectedly the host ends its own process without reporting
 *   SERVICE_STOPPED, which is what makes the SCM run the failure actions that
 *   `sc.exe failure` sets (restart after 5 s, 5 s, then every 30 s; counter reset daily), and
 *   `sc.exe failureflag 1` also covers a stop with a non-zero exit code.
 * - Stop: Node has no SIGTERM on Windows, so the host ends node and its children
 *   (taskkill /T /F); safe because the agent writes its state atomically and reconciles on start.
 * - Only Windows PowerShell 5.1 can compile it (PowerShell 7's Add-Type can't write a .NET
 *   Framework program): the build always uses 64-bit powershell.exe, whatever the backend uses.
 * ⚠️ Not run on Windows (none here): the build script is checked by the PowerShell grammar,
 * the C# source by inspection only (C# 5, which the .NET Framework compiler accepts).
 *
 * FILES. The service host and its build script live in the runtime folder
 * %ProgramFiles%\jit-agent with node.exe and the agent; the state, its key and the log in
 * %ProgramData%\jit-agent. Both are SYSTEM and Administrators only (windowsAcl.ts checks,
 * sets and reads back their ACLs): a folder a user could write would let them replace a program
 * that runs as SYSTEM. Every program is named by its absolute path in System32.
 */
import path from 'node:path';

export const WINDOWS_SERVICE_NAME = 'jit-agent';
const DISPLAY_NAME = 'jit-access agent';
const DESCRIPTION = 'Creates, enables and deletes the temporary local accounts of jit-access grants.';
export const PARAMETERS_KEY = `HKLM\\SYSTEM\\CurrentControlSet\\Services\\${WINDOWS_SERVICE_NAME}\\Parameters`;
/** sc.exe exit codes (Win32 errors). */
export const ERROR_SERVICE_DOES_NOT_EXIST = 1060;
export const ERROR_SERVICE_NOT_ACTIVE = 1062;
export const ERROR_SERVICE_MARKED_FOR_DELETE = 1072;
/** SERVICE_STOPPED in `sc.exe query`'s STATE line. */
const SERVICE_STOPPED = 1;

export interface WindowsLayout {
  /** %ProgramData%\jit-agent: state, key and the agent's log. */
  programDir: string;
  logFile: string;
  /** %ProgramFiles%\jit-agent: node.exe, dist\, node_modules\ and the service host. */
  runtimeDir: string;
  /** The service host in the runtime folder: the service's binPath. */
  hostExe: string;
  /** Where installs before the runtime folder kept the service host and its build script. */
  legacyFiles: string[];
}

export function windowsLayout(env: NodeJS.ProcessEnv): WindowsLayout {
  const programDir = path.win32.join(programData(env), 'jit-agent');
  const runtimeDir = path.win32.join(programFiles(env), 'jit-agent');
  return {
    programDir,
    logFile: path.win32.join(programDir, 'agent.log'),
    runtimeDir,
    hostExe: hostExeIn(runtimeDir),
    legacyFiles: [hostExeIn(programDir), buildScriptIn(programDir)],
  };
}

export function hostExeIn(dir: string): string {
  return path.win32.join(dir, 'jit-agent-service.exe');
}

export function buildScriptIn(dir: string): string {
  return path.win32.join(dir, 'build-service-host.ps1');
}

/** The 64-bit Program Files, also from a 32-bit node (whose %ProgramFiles% is the x86 one). */
function programFiles(env: NodeJS.ProcessEnv): string {
  return env.ProgramW6432 ?? env.ProgramFiles ?? 'C:\\Program Files';
}

function programData(env: NodeJS.ProcessEnv): string {
  return env.ProgramData ?? env.ALLUSERSPROFILE ?? 'C:\\ProgramData';
}

export function system32(env: NodeJS.ProcessEnv, exe: string): string {
  return path.win32.join(env.SystemRoot ?? env.windir ?? 'C:\\Windows', 'System32', exe);
}

/**
 * 64-bit Windows PowerShell 5.1 by absolute path. A 32-bit process sees SysWOW64 when it
 * names System32 (file system redirection); Sysnative reaches the real System32 from there.
 */
export function windowsPowerShellExe(env: NodeJS.ProcessEnv, arch: string = process.arch): string {
  const system = arch === 'ia32' && env.PROCESSOR_ARCHITEW6432 ? 'Sysnative' : 'System32';
  return path.win32.join(env.SystemRoot ?? env.windir ?? 'C:\\Windows', system, 'WindowsPowerShell', 'v1.0', 'powershell.exe');
}

/** powershell.exe's arguments before the script: no profile, no prompt, no execution policy prompt. */
export const POWERSHELL_ARGS = ['-NoLogo', '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass'];

/**
 * One command line from argv, the way the Microsoft C runtime (and node.exe) splits it back:
 * quotes around arguments with white space or quotes, backslashes doubled only before a quote.
 */
export function windowsCommandLine(args: string[]): string {
  return args.map(quoteWindowsArg).join(' ');
}

function quoteWindowsArg(arg: string): string {
  if (/[\u0000-\u001F]/.test(arg)) throw new Error(`control character in ${JSON.stringify(arg)}`);
  if (arg !== '' && !/[ \t"]/.test(arg)) return arg;
  let out = '"';
  let backslashes = 0;
  for (const c of arg) {
    if (c === '\\') {
      backslashes++;
    } else if (c === '"') {
      out += '\\'.repeat(backslashes * 2 + 1) + '"';
      backslashes = 0;
    } else {
      out += '\\'.repeat(backslashes) + c;
      backslashes = 0;
    }
  }
  return `${out}${'\\'.repeat(backslashes * 2)}"`;
}

export function queryCommand(env: NodeJS.ProcessEnv): string[] {
  return [system32(env, 'sc.exe'), 'query', WINDOWS_SERVICE_NAME];
}

/** `sc.exe query` output → the STATE number (1 stopped, 4 running…), or null. */
function parseServiceState(stdout: string): number | null {
  const m = /STATE\s*:\s*(\d+)/.exec(stdout);
  return m ? Number(m[1]) : null;
}

export function isStopped(stdout: string): boolean {
  return parseServiceState(stdout) === SERVICE_STOPPED;
}

export interface WindowsServiceOptions {
  /** node.exe, absolute. */
  node: string;
  /** node's arguments: <runtime>\dist\agent\main.js run --state <file>. */
  args: string[];
  /** The runtime folder (node finds the agent's packages from dist\agent\main.js itself). */
  workingDirectory: string;
  layout: WindowsLayout;
}

/**
 * Registers (or, when `replacing`, reconfigures) the service, stores what the host runs,
 * sets the restart actions and starts it.
 */
export function registerCommands(o: WindowsServiceOptions, replacing: boolean, env: NodeJS.ProcessEnv): string[][] {
  const sc = system32(env, 'sc.exe');
  const reg = system32(env, 'reg.exe');
  const name = WINDOWS_SERVICE_NAME;
  // Why the quotes inside binPath: an unquoted path with spaces lets Windows try shorter
  // prefixes as programs (the "unquoted service path" hole). sc.exe wants "key=" and the value
  // as two arguments.
  const binPath = `"${o.layout.hostExe}"`;
  const regValue = (v: string, data: string): string[] => [reg, 'add', PARAMETERS_KEY, '/v', v, '/t', 'REG_SZ', '/d', data, '/f'];
  return [
    [sc, replacing ? 'config' : 'create', name, 'binPath=', binPath, 'start=', 'auto', 'DisplayName=', DISPLAY_NAME],
    regValue('Application', o.node),
    regValue('AppParameters', windowsCommandLine(o.args)),
    regValue('AppDirectory', o.workingDirectory),
    regValue('AppLog', o.layout.logFile),
    [sc, 'description', name, DESCRIPTION],
    [sc, 'failure', name, 'reset=', '86400', 'actions=', 'restart/5000/restart/5000/restart/30000'],
    [sc, 'failureflag', name, '1'],
    [sc, 'start', name],
  ];
}

export function stopCommand(env: NodeJS.ProcessEnv): string[] {
  return [system32(env, 'sc.exe'), 'stop', WINDOWS_SERVICE_NAME];
}

/** Marks the service for deletion; the SCM removes it (and its registry key) once it is stopped. */
export function deleteCommand(env: NodeJS.ProcessEnv): string[] {
  return [system32(env, 'sc.exe'), 'delete', WINDOWS_SERVICE_NAME];
}

/** Exit 0 only in an elevated (Administrator) process: fltmc needs admin rights for anything. */
export function privilegeProbeCommand(env: NodeJS.ProcessEnv): string[] {
  return [system32(env, 'fltmc.exe')];
}
