import type { Ctx } from '../context.ts';
import { audit } from '../store/audit.ts';

export type DeliveryOutcome = { ok: true } | { ok: false; error: string };

/**
 * Records one attempt to email a grant's credentials, by the server or by the
 * endpoint: the grant shows sent or failed (with the reason), the audit has
 * every attempt. Never given the password.
 */
export async function recordDelivery(ctx: Ctx, grantId: string, outcome: DeliveryOutcome, via: 'server' | 'endpoint', actor: string): Promise<void> {
  const g = await ctx.c.grants.findOne({ _id: grantId });
  if (!g) return;
  const attempt = g.delivery.attempts + 1;
  const now = new Date();
  const delivery = outcome.ok
    ? { status: 'sent' as const, attempts: attempt, sentAt: now }
    : { status: 'failed' as const, attempts: attempt, lastError: outcome.error };
  await ctx.c.grants.updateOne({ _id: grantId }, { $set: { delivery, updatedAt: now } });
  await audit(ctx.c, {
    actor,
    type: outcome.ok ? 'email.sent' : 'email.attempt-failed',
    grantId,
    endpointId: g.endpointId,
    detail: { attempt, via, to: g.email, ...(outcome.ok ? {} : { error: outcome.error }) },
  });
}

/** A new password is on its way: the grant's email is pending again. */
export async function resetDelivery(ctx: Ctx, grantId: string): Promise<void> {
  await ctx.c.grants.updateOne({ _id: grantId }, { $set: { delivery: { status: 'pending', attempts: 0 }, updatedAt: new Date() } });
}
