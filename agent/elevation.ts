/**
 * elevate-account on the endpoint: an existing account is put in the group for the window and
 * restored to its recorded baseline after. The steps of the grant lifecycle keep their meaning:
 *
 *   planned → created   the account exists, is not a system account and not one of ours
 *   created → enabled   baseline saved (was it a member?), then the membership (and sudo drop-in)
 *   enabled → disabled  the rights are gone: out of the group if we put it there, drop-in removed
 *   disabled → removed  sessions ended (endAction), the guard's last look, the user told
 *
 * Runs inside GrantRunner's lock, like grantEnd.ts.
 */
import { AccountError } from './os/backend.ts';
import type { ElevationBackend } from './os/elevation.ts';
import { checkGuard, takeSnapshot } from './guard.ts';
import type { RunnerParts } from './runnerParts.ts';
import type { GrantRecord } from './state.ts';

function backendOf(p: RunnerParts): ElevationBackend {
  const e = p.backend.elevation;
  if (!e) throw new AccountError('UNSUPPORTED_GROUP', `this agent cannot elevate existing accounts on ${p.backend.os} yet`);
  return e;
}

/** planned → created, or failed at once with the reason (a missing account does not come back by retrying). */
export async function checkElevation(p: RunnerParts, r: GrantRecord): Promise<void> {
  const name = r.username;
  const a = await backendOf(p).account(name);
  const refusal = !a
    ? `no local account ${name} on this endpoint`
    : a.system
      ? `${name} is a system account: not elevated`
      : a.managed
        ? `${name} is a temporary account of this service: not elevated`
        : null;
  if (refusal) {
    r.step = 'failed';
    p.report(r, 'failed', refusal);
    return;
  }
  r.step = 'created';
  r.accountId = a!.id;
  p.report(r, 'created', `account ${name} (${a!.id}) found; ${a!.admin ? 'already' : 'not'} an administrator`);
}

/** created → enabled. The baseline is on disk before the membership changes. */
export async function enableElevation(p: RunnerParts, r: GrantRecord): Promise<void> {
  const e = backendOf(p);
  await takeSnapshot(p, r);
  if (!r.elevation) {
    // A baseline an earlier agent recorded (a handover after re-enrollment) wins over what the group holds now.
    r.elevation = { wasMember: r.plan.wasMember ?? (await e.isMember(r.username, r.plan.group)), sudo: false };
    await p.store.save();
  }
  if (!r.elevation.wasMember) await e.addMember(r.username, r.plan.group);
  if (r.plan.passwordlessSudo && r.plan.group === 'Administrators') {
    r.elevation.sudo = true;
    await p.store.save();
    await e.grantSudo(r.username, r.plan.grantId);
  }
  r.step = 'enabled';
  void p.sink.elevated(r);
  p.report(r, 'enabled', `was a member before: ${r.elevation.wasMember ? 'yes' : 'no'}; passwordless sudo: ${r.elevation.sudo ? 'yes' : 'no'}`);
  p.log.info({ grantId: r.plan.grantId, account: r.username, group: r.plan.group, wasMember: r.elevation.wasMember }, 'account elevated');
}

/** enabled → disabled: the rights taken away, by the baseline. Also run ahead of the rest for every due grant. */
export async function takeRightsAway(p: RunnerParts, r: GrantRecord): Promise<void> {
  // 'created' with a baseline: the enable got part of the way (the membership, not the drop-in).
  if (r.step !== 'enabled' && r.step !== 'removing' && !(r.step === 'created' && r.elevation)) return;
  r.step = 'removing';
  const { what, changedByOthers } = await restoreBaseline(backendOf(p), r);
  if (changedByOthers) p.report(r, 'membership-changed', `someone else took ${r.username} out of ${r.plan.group} during the window; nothing to undo`);
  r.step = 'disabled';
  p.report(r, 'disabled', what);
  await p.store.save();
}

/**
 * The account back to its recorded baseline: out of the group only if we put it there, our
 * sudoers drop-in removed. Idempotent. Also what uninstall runs for every elevation left.
 */
export async function restoreBaseline(e: ElevationBackend, r: GrantRecord): Promise<{ what: string; changedByOthers: boolean }> {
  const b = r.elevation;
  let what = 'it was never put in the group';
  let changedByOthers = false;
  if (b && !b.wasMember) {
    if (await e.isMember(r.username, r.plan.group)) {
      await e.removeMember(r.username, r.plan.group);
      what = `taken out of ${r.plan.group}`;
    } else {
      what = `already out of ${r.plan.group}`;
      changedByOthers = true;
    }
  } else if (b?.wasMember) {
    what = `left in ${r.plan.group}: it was a member before the grant`;
  }
  if (b?.sudo) await e.revokeSudo(r.plan.grantId);
  return { what, changedByOthers };
}

/** The whole end: rights away, sessions ended, the guard's last look, the user told. */
export async function endElevation(p: RunnerParts, r: GrantRecord, grants: GrantRecord[]): Promise<void> {
  if (r.step === 'planned' || r.step === 'creating' || (r.step === 'created' && !r.elevation)) {
    r.step = 'removed';
    p.report(r, 'removed', 'the account was never elevated');
    return;
  }
  await takeRightsAway(p, r);
  if (r.step === 'disabled') {
    const { ended } = await backendOf(p).endSessions(r.username, r.plan.endAction);
    p.report(r, 'logged-off', `${ended} process(es) ended (${r.plan.endAction})`);
    await checkGuard(p, r, grants);
    r.step = 'removed';
    p.report(r, 'removed', r.elevation?.wasMember ? 'membership kept: it predates the grant' : undefined);
    void p.sink.ended(r);
  }
}
