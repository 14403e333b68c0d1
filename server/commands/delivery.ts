/**
 * Where a grant's credentials email stands. These take the collections only (not the
 * whole Ctx), so the server mailer can use them without an import cycle through the
 * context, which holds the mailer.
 */
import { audit, auditOnce } from '../store/audit.ts';
import type { Collections, Delivery } from '../store/collections.ts';

export type DeliveryOutcome = { ok: true } | { ok: false; error: string };

/** What these functions need: the collections. A Ctx is one. */
export interface DeliveryStore {
  c: Collections;
}

export const NOT_SENT_REASON = 'access ended before the credentials were delivered';
const FAILED_REASON = 'the grant failed before the credentials were delivered';

/**
 * Records one attempt to email a grant's credentials, by the server or by the
 * endpoint: the grant shows sent or failed (with the reason), the audit has
 * every attempt. Never given the password. A failure reported after the email
 * was closed as not-sent is counted but does not reopen it; a late success wins.
 */
export async function recordDelivery(ctx: DeliveryStore, grantId: string, outcome: DeliveryOutcome, via: 'server' | 'endpoint', actor: string, auditId?: string): Promise<void> {
  // An agent's report applied again (after a timeout or an outage) counts once: its audit event,
  // keyed by the report, says it was. Only a crash between the two writes below counts it twice.
  if (auditId && (await ctx.c.audit.findOne({ _id: auditId }, { projection: { _id: 1 } }))) return;
  const g = await ctx.c.grants.findOne({ _id: grantId });
  if (!g) return;
  const before = g.delivery;
  const attempt = before.attempts + 1;
  const now = new Date();
  const delivery: Delivery = outcome.ok
    ? { status: 'sent', attempts: attempt, sentAt: now }
    : before.status === 'not-sent'
      ? { ...before, attempts: attempt }
      : { status: 'failed', attempts: attempt, lastError: outcome.error };
  await ctx.c.grants.updateOne({ _id: grantId }, { $set: { delivery, updatedAt: now } });
  const event = {
    actor,
    type: outcome.ok ? 'email.sent' : 'email.attempt-failed',
    grantId,
    endpointId: g.endpointId,
    detail: { attempt, via, to: g.email, ...(outcome.ok ? {} : { error: outcome.error }) },
  };
  await (auditId ? auditOnce(ctx.c, auditId, event) : audit(ctx.c, event));
}

/** A new password is on its way: the grant's email is pending again. */
export async function resetDelivery(ctx: DeliveryStore, grantId: string): Promise<void> {
  await ctx.c.grants.updateOne({ _id: grantId }, { $set: { delivery: { status: 'pending', attempts: 0 }, updatedAt: new Date() } });
}

/**
 * The grant reached a final state: an email still pending will never go out (the agent
 * and the server stop retrying at the end), so it is closed as not-sent with the reason
 * and audited as `email.not-sent`. Sent and failed emails stay as they are. Returns
 * whether it closed one. Call it outside the grant's lock, after the final transition.
 */
export async function closeDeliveryOnEnd(ctx: DeliveryStore, grantId: string): Promise<boolean> {
  const g = await ctx.c.grants.findOne({ _id: grantId });
  if (!g || g.delivery.status !== 'pending') return false;
  const reason = g.state === 'failed' ? FAILED_REASON : NOT_SENT_REASON;
  const delivery: Delivery = { status: 'not-sent', attempts: g.delivery.attempts, lastError: reason };
  // Conditional, so a success recorded since the read is not overwritten. Why that is fine
  // here though hot paths filter on _id alone: it runs once per grant, at its end.
  const res = await ctx.c.grants.updateOne({ _id: grantId, 'delivery.status': 'pending' }, { $set: { delivery, updatedAt: new Date() } });
  if (res.modifiedCount === 0) return false;
  await audit(ctx.c, { actor: 'system', type: 'email.not-sent', grantId, endpointId: g.endpointId, detail: { reason, state: g.state, attempts: g.delivery.attempts } });
  return true;
}
