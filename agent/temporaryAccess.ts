/**
 * temporary-access on the endpoint: a new account with a random name and password, created
 * disabled, enabled (after the OS backstop timer is armed) and at the end removed through the one
 * removal sequence (grantEnd.ts). The counterpart of elevation.ts; GrantRunner (accounts.ts)
 * decides which step is due. Runs inside GrantRunner's lock.
 */
import { removeGrantAccount } from './grantEnd.ts';
import { armBackstop } from './timers.ts';
import { checkGuardLogged, takeSnapshot } from './guard.ts';
import { AccountError } from './os/backend.ts';
import { removeAccount, type RemovalStep } from './removal.ts';
import type { RunnerParts } from './runnerParts.ts';
import type { GrantRecord } from './state.ts';
import { nextUid } from './uids.ts';

/** Loaded with the first temporary grant: an idle agent keeps generate-password out of its memory. */
const newPassword = async () => (await import('./credentials.ts')).newPassword();

/** A taken uid (an account made by someone else) is skipped; this many in a row is a fault. */
const UID_TRIES = 20;

/** planned → created: the account, disabled, with its password handed to the delivery. */
export async function createTemporary(p: RunnerParts, r: GrantRecord): Promise<void> {
  if (r.step === 'creating' && (await p.backend.lookup(r.username))) {
    // A crash mid-create lost the password: start over with a clean account.
    await removeAccount(p.backend, { name: r.username, id: r.accountId ?? '' }, 'disable');
  }
  r.step = 'creating';
  await p.store.save();
  const password = await newPassword();
  for (let tries = 1; ; tries++) {
    try {
      const spec = { name: r.username, group: r.plan.group, grantId: r.plan.grantId, expiresAt: new Date(r.plan.endAt), ...(r.uid === undefined ? {} : { uid: r.uid }) };
      r.accountId = (await p.backend.createDisabled(spec, password)).id;
      break;
    } catch (err) {
      if (!(err instanceof AccountError && err.code === 'ID_TAKEN' && tries < UID_TRIES)) throw err;
      Object.assign(r, nextUid(p.store.state, p.backend.uidRange));
      await p.store.save();
    }
  }
  r.step = 'created';
  r.emailPending = true;
  p.report(r, 'created');
  await p.store.save();
  p.log.info({ grantId: r.plan.grantId, username: r.username }, 'account created, disabled');
  p.sink.deliver(r, password);
}

/**
 * Credentials still owed but no delivery under way: the agent restarted (the
 * password died with the process) or the admin asked for a resend.
 */
export function needsNewPassword(p: RunnerParts, r: GrantRecord): boolean {
  return r.emailPending && (r.step === 'created' || r.step === 'enabled') && !p.sink.isActive(r.plan.grantId);
}

export async function resetPassword(p: RunnerParts, r: GrantRecord): Promise<void> {
  const password = await newPassword();
  await p.backend.setPassword(r.username, password);
  p.report(r, 'password-reset');
  p.log.info({ grantId: r.plan.grantId, username: r.username }, 'new password set for delivery');
  p.sink.deliver(r, password);
}

/** created → enabled: the guard's snapshot, the OS timer, the sudo drop-in if asked, then the account. */
export async function enableTemporary(p: RunnerParts, r: GrantRecord): Promise<void> {
  await takeSnapshot(p, r);
  // The timer first: a crash between the two then leaves a timer with nothing to do, not an
  // enabled account whose timer was never asked for.
  const backstop = await armBackstop(p, r);
  if (r.plan.passwordlessSudo && r.plan.group === 'Administrators') {
    // Before the account can log in; removed by the removal (grantEnd.ts), with the purge at the latest.
    const e = p.backend.elevation;
    if (!e) throw new AccountError('UNSUPPORTED_GROUP', `no passwordless sudo on ${p.backend.os}`);
    await e.grantSudo(r.username, r.plan.grantId);
  }
  await p.backend.enable(r.username, new Date(r.plan.endAt));
  r.step = 'enabled';
  p.report(r, 'enabled', `backstop: ${backstop}`);
  p.log.info({ grantId: r.plan.grantId, username: r.username }, 'account enabled');
}

/** The account's removal, then the guard's last look (which never holds the removal back). */
export async function removeTemporary(p: RunnerParts, r: GrantRecord, grants: GrantRecord[], upTo?: RemovalStep): Promise<void> {
  try {
    await removeGrantAccount(p, r, upTo);
  } finally {
    // Once the account is dead (disabled) its window is over, even while its logoff, delete or
    // purge is retried: a rogue admin must not wait for a deletion that keeps failing.
    if (r.guard && (r.step === 'disabled' || r.step === 'deleted' || r.step === 'removed')) {
      await checkGuardLogged(p, r, grants);
    }
  }
}
