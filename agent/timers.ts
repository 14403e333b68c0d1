/**
 * The OS timers that end a grant at its end even if the agent is dead then, for the policy layer:
 * the backstop of a temporary account (AccountBackend.armBackstop: the account made dead) and the
 * restore timer of an elevation (ElevationBackend.restoreTimers: a membership we added taken
 * away). One bookkeeping for both, in the grant record: only 'armed' counts as armed; a crash
 * before the step's save leaves another state, and the timer is armed again at start (arming is
 * idempotent). A failure does not hold the grant back: it is retried with backoff and alerted
 * (`backstop-failed`) after a few. Every function runs inside GrantRunner's lock.
 */
import { backoffMs } from '../mail/retryLoops.ts';
import type { RestoreSpec } from './os/elevation.ts';
import type { RunnerParts } from './runnerParts.ts';
import type { GrantRecord } from './state.ts';

/** Failed arms are alerted after this many. */
const BACKSTOP_ALERT_AFTER = 3;
/**
 * An elevation's restore timer fires this long after the end: the agent, when alive, restores
 * the baseline at the end itself (and disarms the timer), with its reports and the guard's last look.
 */
export const RESTORE_GRACE_MS = 30_000;

/** What the restore timer of an elevation takes away, and when. */
export function restoreSpec(r: GrantRecord): RestoreSpec {
  return {
    grantId: r.plan.grantId, name: r.username, group: r.plan.group, at: new Date(Date.parse(r.plan.endAt) + RESTORE_GRACE_MS), logoff: r.plan.endAction === 'logoff',
    membership: r.elevation?.wasMember === false, sudo: r.elevation?.sudo === true,
  };
}

/** The grant has (or should have) an OS timer: a temporary account, or, where the OS keeps restore timers, a membership we added or a sudo drop-in. */
export function needsTimer(p: RunnerParts, r: GrantRecord): boolean {
  if (r.plan.operation !== 'elevate-account') return true;
  return !!p.backend.elevation?.restoreTimers && (r.elevation?.wasMember === false || r.elevation?.sudo === true);
}

/** Arms the grant's OS timer. The caller saves the state. */
export async function armBackstop(p: RunnerParts, r: GrantRecord): Promise<string> {
  r.backstop = 'arming';
  try {
    const timers = p.backend.elevation?.restoreTimers;
    let kind: string;
    if (r.plan.operation === 'elevate-account') {
      if (!timers) throw new Error(`no restore timer on ${p.backend.os}`);
      await timers.arm(restoreSpec(r));
      kind = 'timer';
    } else {
      kind = await p.backend.armBackstop(r.username, new Date(r.plan.endAt));
    }
    r.backstop = 'armed';
    r.backstopAttempts = 0;
    delete r.backstopRetryAt;
    return kind;
  } catch (err) {
    const reason = (err as Error).message;
    r.backstop = 'failed';
    r.backstopAttempts += 1;
    r.backstopRetryAt = new Date(p.now() + backoffMs(r.backstopAttempts)).toISOString();
    p.log.error({ grantId: r.plan.grantId, username: r.username, attempts: r.backstopAttempts, err: reason }, 'OS backstop timer not armed, will retry');
    if (r.backstopAttempts === BACKSTOP_ALERT_AFTER) p.report(r, 'backstop-failed', reason);
    return `not armed (${reason})`;
  }
}

/** An enabled grant whose timer still has to be armed, and when. */
export function backstopDueAt(p: RunnerParts, r: GrantRecord): number | null {
  if (r.step !== 'enabled' || r.backstop === 'armed' || !needsTimer(p, r)) return null;
  return r.backstopRetryAt ? Date.parse(r.backstopRetryAt) : 0;
}

/**
 * At start: arms again the timers a reboot dropped (where the OS keeps them only in memory) and
 * those whose arming a crash interrupted. A timer the OS keeps is left as it is: arming again
 * replaces it, and a failure in between would leave the grant without one. Restore timers are
 * kept by the OS (a task, a launchd plist).
 */
export async function rearmBackstops(p: RunnerParts, grants: GrantRecord[]): Promise<void> {
  for (const r of grants) {
    if (r.step !== 'enabled' || Date.parse(r.plan.endAt) <= p.now() || !needsTimer(p, r)) continue;
    const kept = r.plan.operation === 'elevate-account' || p.backend.backstopSurvivesReboot;
    if (r.backstop !== 'armed' || !kept) await armBackstop(p, r);
  }
  await p.store.save();
}
