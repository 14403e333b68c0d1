import { isFinal, next, type GrantEvent } from '../domain/lifecycle.ts';
import type { Ctx } from '../context.ts';
import { audit } from '../store/audit.ts';
import { closeDeliveryOnEnd } from './delivery.ts';
import type { GrantDoc } from '../store/collections.ts';

/**
 * A grant that ended for good needs no more jobs or instructions (the audit
 * keeps its history). Why delete them: FerretDB scans whole collections for
 * anything but _id, so finished rows would slow every poll and job scan.
 */
async function forgetFinished(ctx: Ctx, grantId: string): Promise<void> {
  await ctx.scheduler.forget(grantId);
  await ctx.c.instructions.deleteMany({ grantId });
}

/**
 * Applies a lifecycle event to a stored grant and audits the transition.
 * Read, decision and write run under the grant's lock (see db/serialQueues.ts), so two
 * events never both move the grant from the same state.
 * Returns the grant as stored afterwards, or null if there is no such grant.
 */
export async function applyEvent(ctx: Ctx, grantId: string, event: GrantEvent, actor: string): Promise<GrantDoc | null> {
  const step = await ctx.grantLocks.run(grantId, async () => {
    const g = await ctx.c.grants.findOne({ _id: grantId });
    if (!g) return null;
    const revokeRequested = g.revokeRequested || event.type === 'revoke';
    const t = next(g.state, event, { revokeRequested });
    if (!t) return { g, t };
    const set: Partial<GrantDoc> = { state: t.to, updatedAt: new Date(), revokeRequested, ...(t.reason ? { reason: t.reason } : {}) };
    await ctx.c.grants.updateOne({ _id: grantId }, { $set: set });
    await audit(ctx.c, {
      actor,
      type: `grant.${t.to}`,
      grantId,
      endpointId: g.endpointId,
      detail: { from: t.from, to: t.to, ...(t.reason ? { reason: t.reason } : {}) },
    });
    return { g: { ...g, ...set }, t };
  });
  if (!step?.t) return step?.g ?? null;
  const { g, t } = step;
  const fields = { grantId, endpointId: g.endpointId, from: t.from, to: t.to, reason: t.reason };
  if (t.to === 'revocation-failed') ctx.log.error(fields, 'ALERT grant revocation failed');
  else ctx.log.info(fields, 'grant transition');
  if (isFinal(t.to)) {
    await forgetFinished(ctx, grantId);
    await closeDeliveryOnEnd(ctx, grantId);
  }
  if ((t.to === 'removed' || t.to === 'revoked') && g.serverSideSmtp) {
    ctx.mailer.cancel(grantId);
    void ctx.mailer.sendAccessEnded(g, t.to === 'revoked' ? 'revoked' : 'expired');
  }
  return g;
}
