/**
 * `jit-agent uninstall`: every managed account, then the service, then the runtime folder, the
 * marker group and the state. Refuses to run, before anything else, without root (Administrator
 * on Windows).
 *
 * Accounts go FIRST, while the service keeps running, each through the one removal sequence of
 * agent/removal.ts (disable → log off → delete → purge), every step printed. If one can't be
 * removed, nothing else is touched: the account stays disabled (the first step), the service
 * stays in place and goes on ending grants, and the command fails naming the account. Then it
 * stops and removes the service, looks for accounts once more (the agent may have created one
 * between the first pass and its stop), removes the runtime folder, drops the `jit-managed`
 * marker group and deletes the state and key files.
 */
import { AccountError, MARKER_GROUP, type AccountBackend, type AccountInfo } from '../os/backend.ts';
import { restoreBaseline } from '../elevation.ts';
import { REMOVAL_STEPS, removeAccount, type RemovalStep } from '../removal.ts';
import { AgentState } from '../state.ts';
import { JIT_COMMAND_PATH, NotPrivilegedError, defaultStateFile, runtimeDir, type ServiceHost } from './host.ts';
import { LAUNCHD_PLIST_PATH, launchdStopCommands } from './launchd.ts';
import { defaultHost } from './realHost.ts';
import { Steps, errorText, pathFor } from './steps.ts';
import { SYSTEMD_UNIT_PATH, systemdForgetCommands, systemdStopCommands } from './systemd.ts';
import { LAUNCHCTL_BOOTOUT_OK, stopWindowsService, systemctlPath, windowsServiceExists } from './serviceControl.ts';
import { ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_MARKED_FOR_DELETE, deleteCommand, windowsLayout } from './windows.ts';

export interface UninstallOptions {
  stateFile?: string;
  dryRun?: boolean;
}

export async function uninstallAgent(opts: UninstallOptions = {}, overrides: Partial<ServiceHost> = {}): Promise<void> {
  const host: ServiceHost = { ...defaultHost(), ...overrides };
  if (!(await host.isPrivileged())) throw new NotPrivilegedError('uninstall', host.platform);
  const dryRun = opts.dryRun ?? false;
  const steps = new Steps(host, dryRun, 'uninstall');
  const p = pathFor(host.platform);
  const stateFile = p.resolve(opts.stateFile ?? defaultStateFile(host.platform, host.env));
  const runtime = host.installDir ?? runtimeDir(host.platform, host.env);

  const state = await readState(host, stateFile, steps);
  const sandboxRoot = state?.sandboxRoot;
  let backend: AccountBackend;
  try {
    backend = await host.backend(sandboxRoot);
  } catch (e) {
    throw new Error(`cannot reach the local accounts (${errorText(e)}): nothing was changed, the service keeps running`);
  }
  try {
    // 1. Accounts first, with the agent still running: a failure here leaves it in charge.
    await removeManagedAccounts(host, backend, steps, 'before stopping the service');
    await endElevations(backend, state, steps);

    // 2. The service, then the runtime folder it ran from.
    await removeService(host, steps);
    const jit = host.platform === 'win32' ? undefined : (host.commandPath ?? JIT_COMMAND_PATH);
    if (jit && (await host.files.exists(jit))) await steps.act(`remove the jit command ${jit}`, () => host.files.remove(jit));
    for (const dir of [runtime, `${runtime}.new`, `${runtime}.old`]) {
      if (await host.files.exists(dir)) await steps.act(`remove the runtime folder ${dir} (node and the agent)`, () => host.files.removeTree(dir));
    }

    // 3. The agent may have created an account between the first pass and its stop.
    if (dryRun) steps.say('[dry run] would look for managed accounts once more after the stop');
    else await removeManagedAccounts(host, backend, steps, 'after stopping the service', true);

    // 4. The marker group goes with the last account.
    await steps.act(`remove the ${MARKER_GROUP} marker group (where the OS has one)`, async () => {
      try {
        await backend.dropMarker();
      } catch (e) {
        throw new Error(`could not remove the ${MARKER_GROUP} marker group (${errorText(e)}); the service is already gone: run uninstall again`);
      }
    });
  } finally {
    await (backend as Partial<{ dispose(): Promise<void> }>).dispose?.().catch(() => {});
  }

  // 5. The state: its credential and the key that seals the SMTP password.
  for (const f of [stateFile, `${stateFile}.key`]) await steps.act(`delete ${f}`, () => host.files.remove(f));
  await steps.act(`remove ${p.dirname(stateFile)} if empty`, () => host.files.removeDirIfEmpty(p.dirname(stateFile)));
  steps.done('the service, every managed account and the state are gone');
}

async function removeService(host: ServiceHost, steps: Steps): Promise<void> {
  if (host.platform === 'linux') {
    const unit = host.definitionPath ?? SYSTEMD_UNIT_PATH;
    if (await host.files.exists(unit)) {
      const systemctl = await systemctlPath(host);
      for (const cmd of systemdStopCommands(systemctl)) await steps.command(cmd);
      await steps.act(`remove the systemd unit ${unit}`, () => host.files.remove(unit));
      for (const cmd of systemdForgetCommands(systemctl)) await steps.command(cmd);
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
    for (const f of layout.legacyFiles) if (await host.files.exists(f)) await steps.act(`remove ${f} (left by an older install)`, () => host.files.remove(f));
    steps.say(`keep ${layout.logFile} (the agent's log)`);
  }
}

/**
 * Removes every account carrying the agent's ownership marker through the one removal
 * sequence, printing each step. Throws (after trying them all) if any could not be removed.
 */
async function removeManagedAccounts(host: ServiceHost, backend: AccountBackend, steps: Steps, when: string, quietIfNone = false): Promise<void> {
  const accounts = await backend.listManaged();
  if (accounts.length === 0) {
    if (!quietIfNone) steps.say(`no managed account left (${when})`);
    return;
  }
  const failed: string[] = [];
  for (const a of accounts) {
    const what = `remove managed account ${a.name} (${backend.os === 'windows' ? 'SID' : 'uid'} ${a.id}): disable, log off, delete, purge, ${when}`;
    try {
      await steps.act(what, () => removeOne(host, backend, a, steps));
    } catch (e) {
      failed.push(`${a.name}: ${errorText(e)}`);
    }
  }
  if (failed.length) {
    const left = when.startsWith('before')
      ? 'so the service was left as it is (it keeps ending grants)'
      : 'after the service was removed: run uninstall again';
    throw new Error(`could not remove ${failed.length} managed account(s), ${left}; an account that could not be deleted is left disabled:\n  ${failed.join('\n  ')}`);
  }
}

/** purge throws while something of the account is left (a process still exiting): a few tries. */
const ATTEMPTS = 3;
const RETRY_MS = 2_000;

async function removeOne(host: ServiceHost, backend: AccountBackend, a: AccountInfo, steps: Steps): Promise<void> {
  const say = (text: string) => steps.say(`  ${a.name}: ${text}`);
  let next = 'disable' as RemovalStep;
  const done = (step: RemovalStep, o: { existed: boolean; ended?: number }) => {
    if (step === 'disable') say(o.existed ? 'disabled' : 'already gone');
    else if (step === 'logoff') say(o.existed ? `${o.ended ?? 0} process(es) ended` : 'no session to end');
    else if (step === 'delete') say(o.existed ? 'account and home deleted' : 'account already deleted');
    else say('what it left behind is gone');
    next = REMOVAL_STEPS[REMOVAL_STEPS.indexOf(step) + 1] ?? step;
  };
  for (let attempt = 1; ; attempt++) {
    try {
      return await removeAccount(backend, { name: a.name, id: a.id }, next, done);
    } catch (e) {
      // Retried: NOT_FOUND (the running agent removed the account between our lookup and our
      // step; every step skips what is already done) and a purge that found something left.
      const retry = (e instanceof AccountError && e.code === 'NOT_FOUND') || next === 'purge';
      if (!retry || attempt >= ATTEMPTS) throw e;
      say(`${next} failed (${errorText(e)}), trying again`);
      await host.sleep(RETRY_MS);
    }
  }
}

/**
 * Every elevation the state records as possibly in force goes back to its baseline (out of the
 * group if we put it there, our sudoers drop-in gone), and the processes started with the rights
 * are ended, before the service that would have done it at the end is removed. A failure stops
 * the uninstall, the service still in place.
 */
async function endElevations(backend: AccountBackend, state: AgentState | null, steps: Steps): Promise<void> {
  const live = Object.values(state?.grants ?? {}).filter((r) => r.plan.operation === 'elevate-account' && ['enabled', 'removing', 'disabled'].includes(r.step));
  const e = backend.elevation;
  if (!e) return;
  for (const r of live) {
    await steps.act(`end the elevation of ${r.username} (${r.plan.group}, grant ${r.plan.grantId})`, async () => {
      try {
        const { what } = await restoreBaseline(e, r);
        const { ended } = await e.endSessions(r.username, r.plan.endAction);
        steps.say(`  ${r.username}: ${what}; ${ended} process(es) ended (${r.plan.endAction})`);
      } catch (err) {
        throw new Error(`could not end the elevation of ${r.username} (${errorText(err)}), so the service was left as it is (it keeps ending grants)`);
      }
    });
  }
  // Temporary accounts' drop-ins too (their removal below goes by the OS, not the grants).
  const sudo = Object.values(state?.grants ?? {}).filter((r) => r.plan.operation !== 'elevate-account' && r.plan.passwordlessSudo && r.step !== 'removed');
  for (const r of sudo) await steps.act(`remove the sudo drop-in of grant ${r.plan.grantId}`, () => e.revokeSudo(r.plan.grantId));
  const timers = e.restoreTimers;
  // Those of grants the state no longer knows (a lost state file) too: nothing of ours is left to fire later.
  if (timers) await steps.act('remove the OS restore timers of elevations', () => timers.drop());
}

async function readState(host: ServiceHost, stateFile: string, steps: Steps): Promise<AgentState | null> {
  if (!(await host.files.exists(stateFile))) {
    steps.say(`no state file at ${stateFile}: looking for managed accounts all the same`);
    return null;
  }
  try {
    const state = AgentState.parse(JSON.parse(await host.files.read(stateFile)));
    if (state.sandboxRoot) steps.say(`the agent works on the sandbox root ${state.sandboxRoot}`);
    return state;
  } catch (e) {
    steps.say(`cannot read ${stateFile} (${errorText(e)}): looking for managed accounts on this machine`);
    return null;
  }
}
