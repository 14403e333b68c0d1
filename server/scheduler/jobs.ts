/**
 * The server's deadlines for a grant. The agent enforces enable and expiry with
 * its own timers; these jobs are the backstop (an agent whose clock or state
 * went wrong still gets told) and the watchdog (an endpoint that never confirms
 * deletion is alerted and retried).
 */
import { queueInstruction } from '../commands/instructions.ts';
import { verifyAt } from '../commands/scheduleGrant.ts';
import { applyEvent } from '../commands/transition.ts';
import type { Ctx, JobName } from '../context.ts';
import { isFinal } from '../domain/lifecycle.ts';
import { audit } from '../store/audit.ts';
import type { GrantDoc } from '../store/collections.ts';

export interface JobData {
  grantId: string;
  attempt?: number;
}

export function jobHandlers(ctx: Ctx): Record<JobName, (data: JobData) => Promise<void>> {
  return {
    'grant.enable': async ({ grantId }) => {
      const g = await liveGrant(ctx, grantId);
      if (!g || g.revokeRequested || g.state === 'enabled') return;
      await warnIfOffline(ctx, g, 'enable');
      await queueInstruction(ctx, g, 'enable');
    },
    'grant.expire': async ({ grantId }) => {
      const g = await liveGrant(ctx, grantId);
      if (!g) return;
      await warnIfOffline(ctx, g, 'expire');
      await queueInstruction(ctx, g, 'expire');
    },
    'grant.verify': async ({ grantId, attempt = 0 }) => {
      const g = await liveGrant(ctx, grantId);
      if (!g) return;
      const reason = `endpoint ${g.hostname} has not confirmed deletion (check ${attempt + 1})`;
      await applyEvent(ctx, grantId, { type: 'overdue', reason }, 'system');
      await queueInstruction(ctx, g, 'expire');
      await ctx.scheduler.schedule('grant.verify', verifyAt(ctx, new Date(), attempt + 1), { grantId, attempt: attempt + 1 });
    },
  };
}

async function liveGrant(ctx: Ctx, grantId: string): Promise<GrantDoc | null> {
  const g = await ctx.c.grants.findOne({ _id: grantId });
  return g && !isFinal(g.state) ? g : null;
}

async function warnIfOffline(ctx: Ctx, g: GrantDoc, step: string): Promise<void> {
  const e = await ctx.endpointCache.get(g.endpointId);
  if (e && ctx.presence.isOnline(e)) return;
  await audit(ctx.c, { actor: 'system', type: 'endpoint.offline-at-due-step', grantId: g._id, endpointId: g.endpointId, detail: { step } });
  ctx.log.warn({ grantId: g._id, endpointId: g.endpointId, step }, 'endpoint offline at a due step; the agent enforces it from its own plan');
}
