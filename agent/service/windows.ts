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
 * CHOICE: a ~100-line C# ServiceBase host (SERVICE_HOST_SOURCE below), compiled on the
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
 * FILES. The service host, its build script and its log live in %ProgramData%\jit-agent,
 * which install.ts locks to SYSTEM and Administrators (icacls): a folder a user could write
 * would let them replace a program that runs as SYSTEM.
 */
import path from 'node:path';
import { helperArgv, windowsPowerShellPath } from '../os/windows.ts';
import { psQuote } from '../os/windows-scripts.ts';

export const WINDOWS_SERVICE_NAME = 'jit-agent';
const DISPLAY_NAME = 'jit-access agent';
const DESCRIPTION = 'Creates, enables and deletes the temporary local accounts of jit-access grants.';
export const PARAMETERS_KEY = `HKLM\\SYSTEM\\CurrentControlSet\\Services\\${WINDOWS_SERVICE_NAME}\\Parameters`;
/** Well-known SIDs: LocalSystem and BUILTIN\Administrators (names are localized, SIDs are not). */
const SYSTEM_SID = '*S-1-5-18';
const ADMINISTRATORS_SID = '*S-1-5-32-544';
/** sc.exe exit codes (Win32 errors). */
export const ERROR_SERVICE_DOES_NOT_EXIST = 1060;
export const ERROR_SERVICE_NOT_ACTIVE = 1062;
export const ERROR_SERVICE_MARKED_FOR_DELETE = 1072;
/** SERVICE_STOPPED in `sc.exe query`'s STATE line. */
const SERVICE_STOPPED = 1;

export interface WindowsLayout {
  /** %ProgramData%\jit-agent: service host, build script, log. */
  programDir: string;
  hostExe: string;
  buildScript: string;
  logFile: string;
}

export function windowsLayout(env: NodeJS.ProcessEnv): WindowsLayout {
  const programDir = path.win32.join(programData(env), 'jit-agent');
  return {
    programDir,
    hostExe: path.win32.join(programDir, 'jit-agent-service.exe'),
    buildScript: path.win32.join(programDir, 'build-service-host.ps1'),
    logFile: path.win32.join(programDir, 'agent.log'),
  };
}

function programData(env: NodeJS.ProcessEnv): string {
  return env.ProgramData ?? env.ALLUSERSPROFILE ?? 'C:\\ProgramData';
}

function system32(env: NodeJS.ProcessEnv, exe: string): string {
  return path.win32.join(env.SystemRoot ?? env.windir ?? 'C:\\Windows', 'System32', exe);
}

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

/**
 * The service host (C# 5: no string interpolation, no ?. — the .NET Framework compiler that
 * Add-Type uses in Windows PowerShell 5.1 is C# 5).
 */
export const SERVICE_HOST_SOURCE = String.raw`// jit-agent service host: compiled and registered by "jit-agent install" (agent/service/windows.ts).
// Runs the command stored under HKLM\SYSTEM\CurrentControlSet\Services\jit-agent\Parameters.
using System;
using System.Diagnostics;
using System.IO;
using System.ServiceProcess;
using System.Text;
using Microsoft.Win32;

public sealed class JitAgentServiceHost : ServiceBase
{
    const string ParametersKey = @"SYSTEM\CurrentControlSet\Services\jit-agent\Parameters";
    readonly object gate = new object();
    Process child;
    StreamWriter log;
    bool stopping;

    public JitAgentServiceHost()
    {
        ServiceName = "jit-agent";
        CanStop = true;
        CanShutdown = true;
        CanPauseAndContinue = false;
        AutoLog = true;
    }

    public static void Main()
    {
        ServiceBase.Run(new JitAgentServiceHost());
    }

    static string Value(RegistryKey key, string name)
    {
        object v = key.GetValue(name);
        if (v == null) throw new InvalidOperationException("missing registry value HKLM\\" + ParametersKey + "\\" + name);
        return v.ToString();
    }

    protected override void OnStart(string[] args)
    {
        string application, parameters, directory, logFile;
        using (RegistryKey key = Registry.LocalMachine.OpenSubKey(ParametersKey))
        {
            if (key == null) throw new InvalidOperationException("missing registry key HKLM\\" + ParametersKey);
            application = Value(key, "Application");
            parameters = Value(key, "AppParameters");
            directory = Value(key, "AppDirectory");
            logFile = Value(key, "AppLog");
        }
        log = new StreamWriter(new FileStream(logFile, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
        log.AutoFlush = true;
        ProcessStartInfo info = new ProcessStartInfo(application, parameters);
        info.UseShellExecute = false;
        info.CreateNoWindow = true;
        info.WorkingDirectory = directory;
        info.RedirectStandardInput = true;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.StandardOutputEncoding = Encoding.UTF8;
        info.StandardErrorEncoding = Encoding.UTF8;
        child = new Process();
        child.StartInfo = info;
        child.EnableRaisingEvents = true;
        child.OutputDataReceived += Forward;
        child.ErrorDataReceived += Forward;
        child.Exited += ChildExited;
        child.Start();
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        Write("service host: started the agent, pid " + child.Id);
    }

    void Forward(object sender, DataReceivedEventArgs e)
    {
        if (e.Data != null) Write(e.Data);
    }

    void Write(string line)
    {
        lock (gate)
        {
            if (log != null) log.WriteLine(line);
        }
    }

    void ChildExited(object sender, EventArgs e)
    {
        lock (gate)
        {
            if (stopping) return;
        }
        child.WaitForExit();
        Write("service host: the agent exited with code " + child.ExitCode + "; ending the service so that its failure actions restart it");
        // Why exit instead of Stop(): the service control manager runs the failure actions
        // (sc.exe failure) for a service process that ends without reporting SERVICE_STOPPED.
        Environment.Exit(1);
    }

    protected override void OnStop()
    {
        lock (gate)
        {
            stopping = true;
        }
        RequestAdditionalTime(30000);
        EndChild();
        lock (gate)
        {
            if (log != null)
            {
                log.Dispose();
                log = null;
            }
        }
    }

    protected override void OnShutdown()
    {
        OnStop();
    }

    void EndChild()
    {
        if (child == null || child.HasExited) return;
        // Why taskkill /T: the agent's PowerShell children must end with it, and Process.Kill
        // ends one process only. Node has no SIGTERM on Windows; the agent's state file is
        // written atomically and reconciled at start, so ending it at any moment is safe.
        ProcessStartInfo kill = new ProcessStartInfo(Path.Combine(Environment.SystemDirectory, "taskkill.exe"), "/T /F /PID " + child.Id);
        kill.UseShellExecute = false;
        kill.CreateNoWindow = true;
        using (Process p = Process.Start(kill))
        {
            p.WaitForExit(10000);
        }
        if (!child.WaitForExit(10000)) child.Kill();
    }
}
`;

/**
 * The PowerShell script that compiles SERVICE_HOST_SOURCE into `hostExe`. Its one value, the
 * output path, is a single-quoted literal; the C# source is a verbatim here-string.
 */
export function renderBuildScript(hostExe: string): string {
  if (/^'@/m.test(SERVICE_HOST_SOURCE)) throw new Error('the C# source would end the here-string');
  const script = [
    '# jit-access: compiles the jit-agent service host. Written and run by "jit-agent install" (agent/service/windows.ts).',
    "$ErrorActionPreference = 'Stop'",
    `$OutFile = ${psQuote(hostExe)}`,
    "if ($PSVersionTable.PSEdition -eq 'Core') {",
    "  throw 'Run this with Windows PowerShell 5.1 (powershell.exe): PowerShell 7 cannot compile a .NET Framework program.'",
    '}',
    "$Source = @'",
    SERVICE_HOST_SOURCE.trimEnd().replace(/\n/g, '\r\n'),
    "'@",
    "Add-Type -TypeDefinition $Source -Language CSharp -ReferencedAssemblies 'System.ServiceProcess' -OutputAssembly $OutFile -OutputType ConsoleApplication",
    "Write-Output ('compiled ' + $OutFile)",
    '',
  ].join('\r\n');
  // Why ASCII: install.ts writes it with a UTF-8 BOM, but keeping it ASCII means no code page can change it.
  if (!/^[\x09\x0A\x0D\x20-\x7E]*$/.test(script)) throw new Error('build script must be ASCII: a path with other characters is not supported');
  return script;
}

/** Locks a folder to SYSTEM and Administrators: owner Administrators, inheritance cut, full control for both. */
export function lockFolderCommands(dir: string, env: NodeJS.ProcessEnv): string[][] {
  const icacls = system32(env, 'icacls.exe');
  return [
    [icacls, dir, '/setowner', ADMINISTRATORS_SID, '/T'],
    [icacls, dir, '/inheritance:r', '/grant:r', `${SYSTEM_SID}:(OI)(CI)F`, `${ADMINISTRATORS_SID}:(OI)(CI)F`, '/T'],
  ];
}

/** Compiles the service host with 64-bit Windows PowerShell 5.1. */
export function buildCommand(buildScript: string, env: NodeJS.ProcessEnv): string[] {
  return [windowsPowerShellPath(env), ...helperArgv(buildScript, [])];
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
  /** node's arguments: <repo>\dist\agent\main.js run --state <file>. */
  args: string[];
  /** The repository (node finds the agent's packages from dist\agent\main.js itself). */
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
