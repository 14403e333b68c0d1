/**
 * The end of a grant on the endpoint, for the policy layer (accounts.ts): the removal of its
 * account, step by step and recorded, and the check against the OS that removes managed accounts
 * no grant explains (the OS timers are in timers.ts). Every function runs inside GrantRunner's lock.
 */
import { removeAccount, type RemovalStep } from './removal.ts';
import { takeRightsAway } from './elevation.ts';
import { checkGuardLogged } from './guard.ts';
import type { RunnerParts } from './runnerParts.ts';
import type { GrantRecord } from './state.ts';


/** Steps after which the removal has begun and is retried until done. */
export const REMOVAL_UNDER_WAY: readonly GrantRecord['step'][] = ['removing', 'disabled', 'deleted'];
/** Steps at which the account no longer exists. */
const GONE: readonly GrantRecord['step'][] = ['deleted', 'removed', 'failed'];

/**
 * disable → (recorded) → log off → delete → (recorded, reported removed) → purge. A retry
 * resumes at the step that failed; the account is dead from the first step on. Purge acts only
 * on the id the OS reported for our account (never on a uid merely planned for it).
 */
export async function removeGrantAccount(p: RunnerParts, r: GrantRecord, upTo: RemovalStep = 'purge'): Promise<void> {
  p.sink.cancel(r.plan.grantId);
  r.emailPending = false;
  if (r.step === 'planned') {
    r.step = 'removed';
    p.report(r, 'removed');
    return;
  }
  const from: RemovalStep = r.step === 'disabled' ? 'logoff' : r.step === 'deleted' ? 'purge' : 'disable';
  // Not saved yet: a crash before the disable is recorded simply runs the removal again from it.
  if (from === 'disable') r.step = 'removing';
  let existed = r.step !== 'deleted';
  await removeAccount(p.backend, { name: r.username, id: r.accountId ?? '' }, from, async (step, o) => {
    if (step === 'disable') {
      existed = o.existed;
      if (!existed) return;
      r.step = 'disabled';
      p.report(r, 'disabled');
      // At once, but never holding the removal back: purge removes it for sure.
      await dropSudo(p, r).catch((err: Error) => p.log.warn({ grantId: r.plan.grantId, err: err.message }, 'sudo drop-in not removed yet; purge retries it'));
    } else if (step === 'logoff' && o.ended !== undefined) {
      p.report(r, 'logged-off', `${o.ended} process(es) ended`);
    } else if (step === 'delete') {
      r.step = 'deleted';
      // Purge failures are counted and alerted on their own: the account itself is gone.
      r.attempts = 0;
      r.alerted = false;
      p.report(r, 'removed', existed ? undefined : 'the account was already gone');
      p.log.info({ grantId: r.plan.grantId, username: r.username }, 'account disabled, logged off and deleted');
      if (existed) p.notify(() => p.sink.ended(r));
    } else if (step === 'purge') {
      // A drop-in left behind would give the next holder of the name (or uid) root: retried with the purge.
      await dropSudo(p, r);
      r.step = 'removed';
      return;
    }
    await p.store.save();
  }, upTo);
}

/** A temporary account's passwordless-sudo drop-in (enableTemporary), removed; missing = success. */
async function dropSudo(p: RunnerParts, r: GrantRecord): Promise<void> {
  if (r.plan.passwordlessSudo) await p.backend.elevation?.revokeSudo(r.plan.grantId);
}

/**
 * The first removal step alone, for every grant whose end has come, before any of them goes on
 * to log off, delete and purge: with several grants ending at once, the last one's account is
 * then dead as soon as the first's, not after the others' whole removals. A failure here is left
 * to the removal itself, which retries and alerts.
 */
export async function disableAhead(p: RunnerParts, r: GrantRecord): Promise<void> {
  if (r.step !== 'enabled') return;
  try {
    if (r.plan.operation === 'elevate-account') return await takeRightsAway(p, r);
    r.step = 'removing';
    if (!(await p.backend.lookup(r.username))) return;
    await p.backend.disable(r.username);
    r.step = 'disabled';
    p.report(r, 'disabled');
    await p.store.save();
  } catch (err) {
    p.log.warn({ grantId: r.plan.grantId, username: r.username, err: (err as Error).message }, 'disable ahead of the removal failed; the removal retries it');
  }
}

/**
 * Start-up and periodic check against the OS: managed accounts no live grant explains are removed
 * (through the one removal), and a grant whose account someone else deleted goes on to its purge,
 * which also ends what still runs under the account's id.
 */
export async function checkAgainstOs(p: RunnerParts, grants: GrantRecord[]): Promise<void> {
  const live = new Map(grants.filter((r) => !GONE.includes(r.step)).map((r) => [r.username, r]));
  for (const acct of await p.backend.listManaged()) {
    if (live.has(acct.name)) continue;
    p.log.warn({ username: acct.name }, 'removing a managed account no grant explains');
    await removeAccount(p.backend, { name: acct.name, id: acct.id }, 'disable').catch((err) =>
      p.log.error({ username: acct.name, err: (err as Error).message }, 'could not remove a managed account no grant explains; will retry'),
    );
  }
  for (const r of live.values()) {
    if (r.step === 'enabled') await checkGuardLogged(p, r, grants);
    // An elevated account is the person's own: it is never ours to find gone.
    if (r.plan.operation === 'elevate-account') continue;
    if ((r.step === 'created' || r.step === 'enabled' || r.step === 'disabled') && !(await p.backend.lookup(r.username))) {
      r.step = 'deleted';
      r.removeNow = true;
      p.report(r, 'removed', 'the account was already gone');
    }
  }
  await p.store.save();
}
