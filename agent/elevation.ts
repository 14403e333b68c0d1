/**
 * elevate-account on the endpoint: an existing account is put in the group for the window and
 * restored to its recorded baseline after. The steps of the grant lifecycle keep their meaning:
 *
 *   planned → created   the account exists, is not a system account and not one of ours
 *   created → enabled   baseline saved (was it a member?), the OS restore timer armed where there
 *                       is one (timers.ts), then the membership (and sudo drop-in)
 *   enabled → disabled  the rights are gone: out of the group if we put it there, drop-in removed,
 *                       the restore timer disarmed
 *   disabled → removed  sessions ended (endAction), the guard's last look, the user told
 *
 * Back-to-back grants of one account and group (the next one enabled in the lead time before the
 * first ends) share one membership: the later grant inherits the earlier one's baseline, and the
 * earlier end leaves the membership to the later grant instead of taking it away under it.
 *
 * Runs inside GrantRunner's lock, like grantEnd.ts.
 */
import { AccountError } from './os/backend.ts';
import type { ElevationBackend } from './os/elevation.ts';
import { checkGuard, takeSnapshot } from './guard.ts';
import { armBackstop, needsTimer, RESTORE_GRACE_MS } from './timers.ts';
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
    // A baseline an earlier agent recorded (a handover after re-enrollment) wins over what the
    // group holds now, and an earlier grant's that still holds the membership wins over the group.
    const before = sharing(p, r)[0]?.elevation?.wasMember;
    // sudo: a drop-in is (or may be) written; removing a missing one is a success.
    const sudo = r.plan.passwordlessSudo && r.plan.group === 'Administrators';
    r.elevation = { wasMember: r.plan.wasMember ?? before ?? (await e.isMember(r.username, r.plan.group)), sudo };
    await p.store.save();
  }
  // The timer before the rights: there is no moment with them and without it.
  if (needsTimer(p, r) && r.backstop !== 'armed') await armBackstop(p, r);
  await p.store.save();
  if (!r.elevation.wasMember) await e.addMember(r.username, r.plan.group);
  if (r.elevation.sudo) await e.grantSudo(r.username, r.plan.grantId);
  r.step = 'enabled';
  p.notify(() => p.sink.elevated(r));
  p.report(r, 'enabled', `was a member before: ${r.elevation.wasMember ? 'yes' : 'no'}; passwordless sudo: ${r.elevation.sudo ? 'yes' : 'no'}`);
  p.log.info({ grantId: r.plan.grantId, account: r.username, group: r.plan.group, wasMember: r.elevation.wasMember }, 'account elevated');
}

/** enabled → disabled: the rights taken away, by the baseline. Also run ahead of the rest for every due grant. */
export async function takeRightsAway(p: RunnerParts, r: GrantRecord): Promise<void> {
  // 'created' with a baseline: the enable got part of the way (the membership, not the drop-in).
  if (r.step !== 'enabled' && r.step !== 'removing' && !(r.step === 'created' && r.elevation)) return;
  r.step = 'removing';
  const { what, change } = await restoreBaseline(backendOf(p), r, sharing(p, r), p.now());
  if (change) p.report(r, 'membership-changed', change);
  r.step = 'disabled';
  p.report(r, 'disabled', what);
  await p.store.save();
}

/**
 * The account back to its recorded baseline: out of the group only if we put it there (and no
 * later grant in `sharing` holds it now), our sudoers drop-in removed, the restore timer
 * disarmed. Idempotent. Also what uninstall runs for every elevation left. `change`: what someone
 * else did to the membership during the window, to be audited; it is not fought.
 */
export async function restoreBaseline(e: ElevationBackend, r: GrantRecord, sharing: GrantRecord[] = [], now = Date.now()): Promise<{ what: string; change?: string }> {
  const b = r.elevation;
  const group = r.plan.group;
  let what = 'it was never put in the group';
  let change: string | undefined;
  if (b && !b.wasMember && sharing.length > 0) {
    what = `left in ${group}: grant ${sharing[0]!.plan.grantId} holds the membership until ${sharing[0]!.plan.endAt}`;
  } else if (b && !b.wasMember) {
    if (await e.isMember(r.username, group)) {
      await e.removeMember(r.username, group).catch((err: unknown) => {
        // Still a member through something else (a nested group, a primary group): audited below.
        if (!(err instanceof AccountError && err.code === 'COMMAND_FAILED')) throw err;
      });
      what = `taken out of ${group}`;
      if (await e.isMember(r.username, group)) {
        what = `our membership of ${group} removed, but it is still a member through another membership`;
        change = `${r.username} was made a member of ${group} another way during the window (a nested or primary group); the baseline was not a member, what we added is gone, the rest is left as it is: review it`;
      }
    } else if (r.backstop === 'armed' && now >= Date.parse(r.plan.endAt) + RESTORE_GRACE_MS) {
      what = `already out of ${group}: the OS restore timer took it out`;
    } else {
      what = `already out of ${group}`;
      change = `someone else took ${r.username} out of ${group} during the window; nothing to undo`;
    }
  } else if (b?.wasMember) {
    what = `left in ${group}: it was a member before the grant`;
  }
  if (b?.sudo) await e.revokeSudo(r.plan.grantId);
  if (b && (!b.wasMember || b.sudo)) await e.restoreTimers?.disarm(r.plan.grantId);
  return { what, ...(change ? { change } : {}) };
}

/** Live grants of ours that hold the same account's membership of the same group after this one (a back-to-back grant). */
function sharing(p: RunnerParts, r: GrantRecord): GrantRecord[] {
  const now = p.now();
  return Object.values(p.store.state.grants).filter(
    (o) =>
      o !== r && o.plan.operation === 'elevate-account' && o.username.toLowerCase() === r.username.toLowerCase() && o.plan.group === r.plan.group &&
      o.elevation !== undefined && (o.step === 'enabled' || o.step === 'created') && !o.removeNow && Date.parse(o.plan.endAt) > now,
  );
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
    p.notify(() => p.sink.ended(r));
  }
}
