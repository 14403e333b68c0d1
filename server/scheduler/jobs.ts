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
import type { StartupHold } from './startupHold.ts';

export interface JobData {
  grantId: string;
  attempt?: number;
}

export function jobHandlers(ctx: Ctx, hold: StartupHold): Record<JobName, (data: JobData) => Promise<void>> {
  return {
    'grant.enable': async ({ grantId }) => {
      const g = await liveGrant(ctx, grantId);
      if (!g || g.revokeRequested || g.state === 'enabled') return;
      await warnIfOffline(ctx, hold, g, 'enable');
      await queueInstruction(ctx, g, 'enable');
    },
    'grant.expire': async ({ grantId }) => {
      const g = await liveGrant(ctx, grantId);
      if (!g) return;
      await warnIfOffline(ctx, hold, g, 'expire');
      await queueInstruction(ctx, g, 'expire');
    },
    'grant.verify': async ({ grantId, attempt = 0 }) => {
      const g = await liveGrant(ctx, grantId);
      if (!g) return;
      const until = hold.until();
      if (Date.now() < until) {
        // Just started, or the database just failed requests: the agent may still be sending
        // the reports it queued meanwhile (see startupHold.ts).
        await ctx.scheduler.schedule('grant.verify', new Date(until), { grantId, attempt });
        ctx.log.debug({ grantId, attempt, until: new Date(until).toISOString() }, 'deletion check held until the agents have had time to report after the start or a database outage');
        return;
      }
      // The next check first: if a step below fails, the grant is still checked again.
      await ctx.scheduler.schedule('grant.verify', verifyAt(ctx, new Date(), attempt + 1), { grantId, attempt: attempt + 1 });
      const reason = `endpoint ${g.hostname} has not confirmed deletion (check ${attempt + 1})`;
      const now = await applyEvent(ctx, grantId, { type: 'overdue', reason }, 'system');
      // Confirmed since it was read: nothing to re-send, and the check just scheduled goes too.
      if (!now || isFinal(now.state)) return ctx.scheduler.forget(grantId);
      await queueInstruction(ctx, now, 'expire');
    },
  };
}

async function liveGrant(ctx: Ctx, grantId: string): Promise<GrantDoc | null> {
  const g = await ctx.c.grants.findOne({ _id: grantId });
  return g && !isFinal(g.state) ? g : null;
}

/**
 * Audits an endpoint that is offline when a step falls due. Right after a start no agent has had
 * time to reconnect, so every endpoint would look offline: the check then waits, in memory, until
 * the agents have had their chance (a warning lost to a crash meanwhile is only a warning).
 */
async function warnIfOffline(ctx: Ctx, hold: StartupHold, g: GrantDoc, step: string): Promise<void> {
  const wait = hold.until() - Date.now();
  if (wait > 0) {
    setTimeout(() => void warnIfOffline(ctx, hold, g, step).catch((err) => ctx.log.debug({ err, grantId: g._id }, 'offline check after the start failed')), wait).unref();
    return;
  }
  const e = await ctx.endpointCache.get(g.endpointId);
  if (e && ctx.presence.isOnline(e)) return;
  await audit(ctx.c, { actor: 'system', type: 'endpoint.offline-at-due-step', grantId: g._id, endpointId: g.endpointId, detail: { step } });
  ctx.log.warn({ grantId: g._id, endpointId: g.endpointId, step }, 'endpoint offline at a due step; the agent enforces it from its own plan');
}
