import { isFinal, next, type GrantEvent } from '../domain/lifecycle.ts';
import type { Ctx } from '../context.ts';
import { auditOnce, transitionAuditId } from '../store/audit.ts';
import { outageOf } from '../journal/registry.ts';
import { closeDeliveryOnEnd } from './delivery.ts';
import { noteNeverEnabled } from './neverEnabled.ts';
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
 *
 * The audit event is written first, under an id made of the grant and the new state
 * (a grant enters each state once), then the state. Why that order: a step that dies
 * in between (database outage, crash) is retried by whoever sent the event (an agent
 * resends a report until it is marked seen); the retry finds the grant still in its
 * old state, makes the same transition, skips the audit it already has and stores the
 * state. The other order would leave a state change with no audit event, for good.
 *
 * A state without a reason clears the old one (`revocation-failed` → `removed`: the
 * grant is no longer failing); the reason stays in the audit trail.
 *
 * A revoke that moves no state (the grant is in `revocation-failed`) is still stored
 * as `revokeRequested` (audited `grant.revoke-requested`, once), so the removal that
 * follows ends the grant `revoked`, not `removed`.
 *
 * `onWrite` is called before the first write, if there is one (see requestRevoke).
 * Returns the grant as stored afterwards, or null if there is no such grant.
 */
export async function applyEvent(ctx: Ctx, grantId: string, event: GrantEvent, actor: string, onWrite: () => void = () => {}): Promise<GrantDoc | null> {
  const step = await ctx.grantLocks.run(grantId, async () => {
    const g = await ctx.c.grants.findOne({ _id: grantId });
    if (!g) return null;
    const revokeRequested = g.revokeRequested || event.type === 'revoke';
    const t = next(g.state, event, { revokeRequested });
    if (!t && revokeRequested && !g.revokeRequested && !isFinal(g.state)) {
      onWrite();
      return { g: await rememberRevoke(ctx, g, actor), t };
    }
    if (!t) return { g, t };
    onWrite();
    await auditOnce(ctx.c, transitionAuditId(grantId, t.to), {
      actor,
      type: `grant.${t.to}`,
      grantId,
      endpointId: g.endpointId,
      detail: { from: t.from, to: t.to, ...(t.reason ? { reason: t.reason } : {}) },
    });
    const set = { state: t.to, updatedAt: new Date(), revokeRequested };
    if (t.reason) await ctx.c.grants.updateOne({ _id: grantId }, { $set: { ...set, reason: t.reason } });
    else await ctx.c.grants.updateOne({ _id: grantId }, { $set: set, $unset: { reason: '' } });
    const { reason: _stale, ...rest } = g;
    return { g: { ...rest, ...set, ...(t.reason ? { reason: t.reason } : {}) }, t };
  });
  if (!step) return null;
  const { g, t } = step;
  if (!t) {
    // Any event on a grant that has ended (a final report sent again after a crash between
    // storing the state and its clean-up, a revoke of an ended grant) finishes what the
    // transition's own call may not have: both steps are idempotent.
    if (isFinal(g.state)) {
      await finish(ctx, g);
      await noteNeverEnabled(ctx, g);
    }
    return g;
  }
  const fields = { grantId, endpointId: g.endpointId, from: t.from, to: t.to, reason: t.reason };
  if (t.to === 'revocation-failed') ctx.log.error(fields, 'ALERT grant revocation failed');
  else ctx.log.info(fields, 'grant transition');
  if (isFinal(t.to)) {
    await finish(ctx, g);
    await noteNeverEnabled(ctx, g, t.from);
  }
  if (t.to === 'enabled' && g.operation === 'elevate-account' && g.serverSideSmtp) void ctx.mailer.sendElevated(g);
  if ((t.to === 'removed' || t.to === 'revoked') && g.serverSideSmtp) {
    ctx.mailer.cancel(grantId);
    void ctx.mailer.sendAccessEnded(g, t.to === 'revoked' ? 'revoked' : 'expired');
  }
  return g;
}

/** Stores that a revoke was asked for a grant whose state it does not change (see applyEvent). */
async function rememberRevoke(ctx: Ctx, g: GrantDoc, actor: string): Promise<GrantDoc> {
  await auditOnce(ctx.c, transitionAuditId(g._id, 'revoke-requested'), {
    actor,
    type: 'grant.revoke-requested',
    grantId: g._id,
    endpointId: g.endpointId,
    detail: { state: g.state },
  });
  const updatedAt = new Date();
  await ctx.c.grants.updateOne({ _id: g._id }, { $set: { revokeRequested: true, updatedAt } });
  return { ...g, revokeRequested: true, updatedAt };
}

async function finish(ctx: Ctx, g: GrantDoc): Promise<void> {
  outageOf(ctx)?.liveGrants.ended(g._id);
  await forgetFinished(ctx, g._id);
  await closeDeliveryOnEnd(ctx, g._id);
}
