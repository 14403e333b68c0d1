/**
 * The Windows service host: its C# source and the Windows PowerShell 5.1 script that compiles
 * it at install time (agent/service/windows.ts says why a host is needed and why this one).
 */
import { psQuote } from '../os/windows-scripts.ts';
import { POWERSHELL_ARGS, windowsPowerShellExe } from './windows.ts';

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

/** Compiles the service host with 64-bit Windows PowerShell 5.1. */
export function buildCommand(buildScript: string, env: NodeJS.ProcessEnv): string[] {
  return [windowsPowerShellExe(env), ...POWERSHELL_ARGS, '-File', buildScript];
}

