import type { Report } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';
import type { GrantEvent } from '../domain/lifecycle.ts';
import { agentActor, audit } from '../store/audit.ts';
import { grantOf } from '../store/grants.ts';
import { recordDelivery, resetDelivery } from './delivery.ts';
import { applyEvent } from './transition.ts';

/**
 * Applies an agent's step reports in order. A report is applied once (its id is
 * remembered), and only to a grant of the reporting endpoint. Returns the ids
 * the agent may drop from its outbox.
 */
export async function applyReports(ctx: Ctx, endpointId: string, reports: Report[]): Promise<string[]> {
  const done: string[] = [];
  for (const r of reports) {
    const g = await grantOf(ctx.c, r.grantId, endpointId);
    if (g && !(await alreadySeen(ctx, r.id))) {
      const actor = agentActor(endpointId);
      // A new name only from a new account (created): after a re-enrollment the grant's new agent makes one.
      if (r.username && (!g.username || (r.type === 'created' && r.username !== g.username))) await ctx.c.grants.updateOne({ _id: g._id }, { $set: { username: r.username } });
      if (r.type === 'email-sent' || r.type === 'email-failed') {
        await recordDelivery(ctx, g._id, r.type === 'email-sent' ? { ok: true } : { ok: false, error: r.detail ?? 'unknown' }, 'endpoint', actor);
      } else {
        await audit(ctx.c, {
          actor,
          type: `agent.${r.type}`,
          grantId: g._id,
          endpointId,
          detail: { agentAt: r.at, ...(r.username ? { username: r.username } : {}), ...(r.detail ? { detail: r.detail } : {}) },
        });
        const event = toEvent(r);
        if (event) await applyEvent(ctx, g._id, event, actor);
        if (r.type === 'password-reset') await resetDelivery(ctx, g._id);
      }
      await markSeen(ctx, r.id, endpointId);
    }
    // Unknown grants and repeats are acknowledged too, or the agent would resend them forever.
    done.push(r.id);
  }
  return done;
}

/**
 * A report re-sent while its first copy is still being applied (an agent whose
 * request timed out) loses the race here; that is not an error. Applying twice
 * is harmless: the lifecycle ignores repeated events.
 */
async function markSeen(ctx: Ctx, reportId: string, endpointId: string): Promise<void> {
  try {
    await ctx.c.seenReports.insertOne({ _id: reportId, endpointId, receivedAt: new Date() });
  } catch (err) {
    if ((err as { code?: number }).code !== 11000) throw err;
  }
}

async function alreadySeen(ctx: Ctx, reportId: string): Promise<boolean> {
  return (await ctx.c.seenReports.findOne({ _id: reportId }, { projection: { _id: 1 } })) !== null;
}

function toEvent(r: Report): GrantEvent | null {
  const reason = r.detail ?? r.type;
  switch (r.type) {
    case 'created':
      return { type: 'created' };
    case 'enabled':
      return { type: 'enabled' };
    case 'removed':
      return { type: 'removed' };
    case 'failed':
    case 'rejected':
      return { type: 'failed', reason };
    case 'removal-failed':
      return { type: 'removal-failed', reason };
    case 'disabled':
    case 'logged-off':
    case 'cleanup-failed':
    case 'password-reset':
    case 'email-sent':
    case 'email-failed':
      return null;
  }
}
