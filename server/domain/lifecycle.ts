/**
 * The grant lifecycle: one pure state machine, no IO.
 *
 *   requested ──created──▶ provisioned ──enabled──▶ enabled ──removed──▶ removed
 *       │                      │                      │
 *       └──────────────── revoke ─────────────────────┘──▶ revoking ──removed──▶ revoked
 *   requested ──failed──▶ failed
 *   any live state ──overdue / removal-failed──▶ revocation-failed ──removed──▶ removed | revoked
 *
 * `revocation-failed` is visible and alerted, but not a dead end: the agent keeps
 * retrying, and its later `removed` report still closes the grant (Vault's
 * lease manager does the same with irrevocable leases).
 */
export const GRANT_STATES = [
  'requested',
  'provisioned',
  'enabled',
  'revoking',
  'removed',
  'revoked',
  'failed',
  'revocation-failed',
] as const;
export type GrantState = (typeof GRANT_STATES)[number];

export const FINAL_STATES: readonly GrantState[] = ['removed', 'revoked', 'failed'];
/** States in which an account may exist on the endpoint: every state but the final ones. */
export const LIVE_STATES: readonly GrantState[] = GRANT_STATES.filter((s) => !FINAL_STATES.includes(s));

export type GrantEvent =
  | { type: 'created' }
  | { type: 'enabled' }
  | { type: 'removed' }
  | { type: 'failed'; reason: string }
  | { type: 'revoke' }
  | { type: 'removal-failed'; reason: string }
  | { type: 'overdue'; reason: string };

export interface Transition {
  from: GrantState;
  to: GrantState;
  /** Set when the new state carries a reason (failed, revocation-failed). */
  reason?: string;
}

/** Whether the grant was ever asked to end early; decides removed vs revoked. */
export interface LifecycleContext {
  revokeRequested: boolean;
}

/**
 * Computes the next state, or null when the event does not apply (a late or
 * duplicate report). Only a non-null result is stored (and audited).
 */
export function next(state: GrantState, event: GrantEvent, ctx: LifecycleContext): Transition | null {
  const to = target(state, event, ctx);
  if (to === null || to === state) return null;
  const reason = 'reason' in event ? event.reason : undefined;
  return reason === undefined ? { from: state, to } : { from: state, to, reason };
}

function target(state: GrantState, event: GrantEvent, ctx: LifecycleContext): GrantState | null {
  if (isFinal(state)) return null;
  switch (event.type) {
    case 'created':
      return state === 'requested' ? 'provisioned' : null;
    case 'enabled':
      return state === 'requested' || state === 'provisioned' ? 'enabled' : null;
    case 'removed':
      return ctx.revokeRequested || state === 'revoking' ? 'revoked' : 'removed';
    case 'failed':
      return state === 'requested' ? 'failed' : null;
    case 'revoke':
      return state === 'revocation-failed' ? null : 'revoking';
    case 'removal-failed':
    case 'overdue':
      return 'revocation-failed';
  }
}

export function isFinal(state: GrantState): boolean {
  return FINAL_STATES.includes(state);
}

/** When the account is enabled: the lead time before the start, or now if that has passed. */
export function enableAtFor(startAt: Date, leadTimeSeconds: number, now: Date): Date {
  return new Date(Math.max(now.getTime(), startAt.getTime() - leadTimeSeconds * 1000));
}

/** The account exists and has (or can be given) credentials to send: resend and re-delivery need this. */
export function hasAccount(state: GrantState): boolean {
  return state === 'provisioned' || state === 'enabled';
}
