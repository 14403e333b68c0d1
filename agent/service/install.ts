/**
 * `jit-agent install`: the agent as a boot-time service that restarts on failure, per OS
 * (systemd.ts, launchd.ts, windows.ts render the definitions). `jit-agent uninstall` is in
 * uninstall.ts.
 *
 * Every step is printed before it is done; with `dryRun` steps are only printed. Read-only
 * probes still run in a dry run (does a file exist, who owns a folder, `sc.exe query`), so that
 * the printed plan is the one a real run would follow. Refuses to run, before anything else,
 * without root (Administrator on Windows).
 *
 * The service runs only what is in folders root (SYSTEM and Administrators) alone can change:
 * node and the built agent are copied into the runtime folder (host.ts says where), and every
 * folder install uses is checked before anything changes and read back after (runtime.ts).
 */
import { JIT_COMMAND_PATH, defaultStateFile, renderJitCommand, runtimeDir, serviceArgv, NotPrivilegedError, type ServiceHost } from './host.ts';
import { LAUNCHD_PLIST_PATH, launchdInstallCommands, renderLaunchdPlist } from './launchd.ts';
import { planPayload } from './payload.ts';
import { defaultHost } from './realHost.ts';
import { checkNodeLibraries, installRuntime, preflight, runtimePaths, securePrivateDir } from './runtime.ts';
import { LAUNCHCTL_BOOTOUT_OK, stopWindowsService, systemctlPath, windowsServiceExists } from './serviceControl.ts';
import { Steps, pathFor } from './steps.ts';
import { SYSTEMD_UNIT_PATH, renderSystemdUnit, systemdInstallCommands } from './systemd.ts';
import { buildScriptIn, hostExeIn, registerCommands, windowsLayout } from './windows.ts';
import { buildCommand, renderBuildScript } from './windowsHost.ts';

export { AGENT_NODE_FLAGS, NotPrivilegedError, type ServiceFiles, type ServiceHost, type ServicePlatform } from './host.ts';

export interface InstallOptions {
  /** Default: the OS's place (defaultStateFile). */
  stateFile?: string;
  dryRun?: boolean;
  /** Shown in the plan. */
  serverUrl: string;
  /** Enrolls with the server and writes the state file (main.ts's enroll). */
  enroll(stateFile: string): Promise<void>;
}

export async function installAgent(opts: InstallOptions, overrides: Partial<ServiceHost> = {}): Promise<void> {
  const host: ServiceHost = { ...defaultHost(), ...overrides };
  if (!(await host.isPrivileged())) throw new NotPrivilegedError('install', host.platform);
  const steps = new Steps(host, opts.dryRun ?? false, 'install');
  const p = pathFor(host.platform);
  const stateFile = p.resolve(opts.stateFile ?? defaultStateFile(host.platform, host.env));
  const paths = runtimePaths(host.installDir ?? runtimeDir(host.platform, host.env));
  // Plain node on the prebuilt JavaScript: compiling TypeScript at run time (tsx) would cost
  // memory for the service's whole life.
  const builtMain = p.join(host.repoDir, 'dist', 'agent', 'main.js');
  if (!(await host.files.exists(builtMain))) throw new Error(`${builtMain} is missing: run npm ci (or npm run build:agent) first`);
  const argv = serviceArgv(host.platform, paths.runtime, stateFile);
  const stateDirs = [...new Set([p.dirname(stateFile), ...(host.platform === 'win32' ? [windowsLayout(host.env).programDir] : [])])];
  const definitionPath = host.platform === 'linux' ? (host.definitionPath ?? SYSTEMD_UNIT_PATH) : host.platform === 'darwin' ? (host.definitionPath ?? LAUNCHD_PLIST_PATH) : undefined;

  // Render first, so a value that can't go into a unit, plist or command line stops us before any change.
  const definition =
    host.platform === 'linux'
      ? renderSystemdUnit({ argv, workingDirectory: paths.runtime, stateFile })
      : host.platform === 'darwin'
        ? renderLaunchdPlist({ argv, workingDirectory: paths.runtime })
        : renderBuildScript(hostExeIn(paths.staging));
  const payload = await (host.payload ? host.payload() : planPayload(host.repoDir, host.nodePath, host.platform));

  // Nothing changes before every folder and file install will use has been found safe.
  const commandPath = host.platform === 'win32' ? undefined : (host.commandPath ?? JIT_COMMAND_PATH);
  const unixFiles = definitionPath ? [stateFile, `${stateFile}.key`, definitionPath, commandPath!] : [];
  const probes = await preflight(host, steps, [...stateDirs, paths.runtime, paths.staging, paths.old, ...unixFiles]);

  await checkNodeLibraries(host, steps, host.nodePath);

  for (const dir of stateDirs) await securePrivateDir(host, steps, dir, probes);
  if (await host.files.exists(stateFile)) {
    steps.say(`keep ${stateFile}: this machine is already enrolled (run "jit-agent uninstall" first to enroll anew)`);
  } else {
    await steps.act(`enroll with ${opts.serverUrl} (one-time token) and write the endpoint credential to ${stateFile}`, () => opts.enroll(stateFile));
  }

  if (host.platform === 'linux') {
    await installRuntime(host, steps, paths, payload);
    await writeJitCommand(host, steps, commandPath!, paths.runtime);
    const unit = definitionPath!;
    const replacing = await host.files.exists(unit);
    await steps.act(`${replacing ? 'replace' : 'write'} the systemd unit ${unit} (it runs only what is in ${paths.runtime})`, () => host.files.write(unit, definition, 0o644));
    for (const cmd of systemdInstallCommands(replacing, await systemctlPath(host))) await steps.command(cmd);
    steps.done('"systemctl status jit-agent" shows it, "journalctl -u jit-agent" its log');
  } else if (host.platform === 'darwin') {
    await installRuntime(host, steps, paths, payload);
    await writeJitCommand(host, steps, commandPath!, paths.runtime);
    const plist = definitionPath!;
    const replacing = await host.files.exists(plist);
    await steps.act(`${replacing ? 'replace' : 'write'} the launchd daemon ${plist} (0644 root:wheel, else launchd ignores it)`, () => host.files.write(plist, definition, 0o644));
    for (const cmd of launchdInstallCommands(plist, replacing)) await steps.command(cmd, replacing && cmd[1] === 'bootout' ? LAUNCHCTL_BOOTOUT_OK : undefined);
    steps.done('"launchctl print system/com.jit-access.agent" shows it, /Library/Logs/jit-agent.log is its log');
  } else {
    const layout = { ...windowsLayout(host.env), runtimeDir: paths.runtime, hostExe: hostExeIn(paths.runtime) };
    const replacing = await windowsServiceExists(host, steps);
    // Why stop first: Windows can't move or replace the folder of a running node.exe.
    if (replacing) await stopWindowsService(host, steps);
    await installRuntime(host, steps, paths, payload, async (staging) => {
      const script = buildScriptIn(staging);
      await steps.act(`write the service host's build script ${script}`, () => host.files.write(script, `\uFEFF${definition}`, 0o600));
      await steps.command(buildCommand(script, host.env), undefined, `compile the service host ${hostExeIn(staging)} (C# via Add-Type, Windows PowerShell 5.1)`);
    });
    const service = { node: argv[0]!, args: argv.slice(1), workingDirectory: paths.runtime, layout };
    for (const cmd of registerCommands(service, replacing, host.env)) await steps.command(cmd);
    for (const f of layout.legacyFiles) if (await host.files.exists(f)) await steps.act(`remove ${f} (left by an older install)`, () => host.files.remove(f));
    steps.done(`"sc.exe query jit-agent" shows it, ${layout.logFile} is its log`);
  }
}

/** The person's `jit` command on everyone's PATH (0755, root's). */
function writeJitCommand(host: ServiceHost, steps: Steps, file: string, runtime: string): Promise<void> {
  const script = renderJitCommand(runtime);
  return steps.act(`write the jit command ${file} (for the person at this endpoint: jit status, jit end, jit request)`, () => host.files.write(file, script, 0o755));
}
