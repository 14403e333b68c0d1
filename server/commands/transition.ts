import { isFinal, next, type GrantEvent } from '../domain/lifecycle.ts';
import type { Ctx } from '../context.ts';
import { audit } from '../store/audit.ts';
import type { GrantDoc } from '../store/collections.ts';

/**
 * Applies a lifecycle event to a stored grant and audits the transition.
 * The update is conditional on the state it read, so two writers cannot both
 * move the grant; the loser re-reads and re-decides.
 * Returns the grant as stored afterwards.
 */
/**
 * A grant that ended for good needs no more jobs or instructions (the audit
 * keeps its history). Why delete them: FerretDB scans whole collections for
 * anything but _id, so finished rows would slow every poll and job scan.
 */
async function forgetFinished(ctx: Ctx, grantId: string): Promise<void> {
  await ctx.scheduler.forget(grantId);
  await ctx.c.instructions.deleteMany({ grantId });
}

export async function applyEvent(ctx: Ctx, grantId: string, event: GrantEvent, actor: string): Promise<GrantDoc | null> {
  for (let tries = 0; tries < 5; tries++) {
    const g = await ctx.c.grants.findOne({ _id: grantId });
    if (!g) return null;
    const revokeRequested = g.revokeRequested || event.type === 'revoke';
    const t = next(g.state, event, { revokeRequested });
    if (!t) return g;
    const now = new Date();
    const set: Partial<GrantDoc> = { state: t.to, updatedAt: now, revokeRequested, ...(t.reason ? { reason: t.reason } : {}) };
    const res = await ctx.c.grants.updateOne({ _id: grantId, state: g.state }, { $set: set });
    if (res.modifiedCount === 0) continue;
    await audit(ctx.c, {
      actor,
      type: `grant.${t.to}`,
      grantId,
      endpointId: g.endpointId,
      detail: { from: t.from, to: t.to, ...(t.reason ? { reason: t.reason } : {}) },
    });
    const log = t.to === 'revocation-failed' ? ctx.log.error.bind(ctx.log) : ctx.log.info.bind(ctx.log);
    log({ grantId, endpointId: g.endpointId, from: t.from, to: t.to, reason: t.reason }, t.to === 'revocation-failed' ? 'ALERT grant revocation failed' : 'grant transition');
    const after = { ...g, ...set };
    if (isFinal(t.to)) await forgetFinished(ctx, grantId);
    if ((t.to === 'removed' || t.to === 'revoked') && g.serverSideSmtp) {
      ctx.mailer.cancel(grantId);
      void ctx.mailer.sendAccessEnded(after, t.to === 'revoked' ? 'revoked' : 'expired');
    }
    return after;
  }
  throw new Error(`grant ${grantId}: state kept changing under us`);
}
