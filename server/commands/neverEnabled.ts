/**
 * Why a grant's user never got access. An agent frozen (or off) across the
 * grant's enable time and end never enables the account, correctly, and then
 * removes it when it wakes up; without a word the timeline would look like a
 * bug. When such a grant ends, this adds `grant.never-enabled` with the time
 * its endpoint was not heard from.
 */
import type { Ctx } from '../context.ts';
import type { GrantState } from '../domain/lifecycle.ts';
import type { Silence } from '../agents/presence.ts';
import { auditOnce, hasEntered, transitionAuditId } from '../store/audit.ts';
import type { GrantDoc } from '../store/collections.ts';

/**
 * Call after the grant reached a final state; `from` is the state it left, when
 * known. Adds the event once (its id is fixed per grant), only for a grant that
 * was due to be enabled before it ended and never was: a grant revoked before
 * its enable time, or one that failed, has its own explanation.
 */
export async function noteNeverEnabled(ctx: Ctx, g: GrantDoc, from?: GrantState): Promise<void> {
  if (g.state !== 'removed' && g.state !== 'revoked') return;
  const endedAt = g.updatedAt;
  if (from === 'enabled' || g.enableAt.getTime() > endedAt.getTime()) return;
  // Left provisioned (or requested) for the end: never enabled. From revoking or
  // revocation-failed it may have been: its `grant.enabled` event says.
  if (from !== 'provisioned' && from !== 'requested' && (await hasEntered(ctx.c, g._id, 'enabled'))) return;
  const e = await ctx.endpointCache.get(g.endpointId);
  const silence = e ? ctx.presence.silenceAround(e, g.enableAt, endedAt.getTime()) : null;
  await auditOnce(ctx.c, transitionAuditId(g._id, 'never-enabled'), {
    actor: 'system',
    type: 'grant.never-enabled',
    grantId: g._id,
    endpointId: g.endpointId,
    detail: {
      enableAt: g.enableAt.toISOString(),
      endedAt: endedAt.toISOString(),
      unresponsive: silence ? silenceDetail(silence) : null,
    },
  });
  ctx.log.warn({ grantId: g._id, endpointId: g.endpointId, unresponsive: silence }, 'grant ended without ever being enabled');
}

function silenceDetail(s: Silence) {
  return { from: s.from.toISOString(), to: s.to?.toISOString() ?? null, ...(s.serverStartedAt ? { serverStartedAt: s.serverStartedAt.toISOString() } : {}) };
}

