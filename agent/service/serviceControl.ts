/**
 * Service manager details shared by install and uninstall: which systemctl, launchctl's exit
 * codes, and the Windows service's state (sc.exe query, stop and wait).
 */
import type { ServiceHost } from './host.ts';
import type { Steps } from './steps.ts';
import { SYSTEMCTL_PATHS } from './systemd.ts';
import { ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_NOT_ACTIVE, isStopped, queryCommand, stopCommand } from './windows.ts';

/** The first systemctl that exists (/usr/bin on merged-/usr systems); never one from PATH. */
export async function systemctlPath(host: ServiceHost): Promise<string> {
  for (const p of SYSTEMCTL_PATHS) if (await host.files.exists(p)) return p;
  return SYSTEMCTL_PATHS[0]!;
}

/**
 * ⚠️ launchctl exit codes from user reports, not documentation: 3 (ESRCH) and 113 "could not
 * find service" when the job is not loaded, 36 (EINPROGRESS) when it is still exiting.
 */
export const LAUNCHCTL_BOOTOUT_OK = [0, 3, 36, 113];

export async function windowsServiceExists(host: ServiceHost, steps: Steps): Promise<boolean> {
  const r = await steps.probe(queryCommand(host.env), [0, ERROR_SERVICE_DOES_NOT_EXIST]);
  return r.code === 0;
}

const STOP_WAIT_MS = 60_000;
const STOP_POLL_MS = 1_000;

/** sc.exe stop returns at once (STOP_PENDING): poll sc.exe query until STOPPED. */
export async function stopWindowsService(host: ServiceHost, steps: Steps): Promise<void> {
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
