import type { Report } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';
import { SerialQueues } from '../db/serialQueues.ts';
import type { GrantEvent } from '../domain/lifecycle.ts';
import { agentActor, auditOnce, reportAuditId } from '../store/audit.ts';
import type { GrantDoc } from '../store/collections.ts';
import { grantOf } from '../store/grants.ts';
import { recordDelivery, resetDelivery } from './delivery.ts';
import { ensureRevokeUnderway } from './revokeRepair.ts';
import { applyEvent } from './transition.ts';

/** One queue per server (a Ctx), keyed by endpoint. */
const queues = new WeakMap<Ctx, SerialQueues>();

/**
 * Applies an agent's step reports in order. A report is applied once, and only
 * to a grant of the reporting endpoint. Returns the ids the agent may drop from
 * its outbox.
 *
 * Why applying twice is safe: an agent whose request timed out sends the batch
 * again, maybe while the first copy is still running, or after a database outage
 * stopped it half-way. So:
 * - one endpoint's batches run one after another (an in-process queue, as the
 *   server is one process per database), so a resent copy waits for the first
 *   and then finds its reports marked seen;
 * - every step of a report is idempotent, so a report whose first application
 *   died before it was marked seen is simply applied again: its audit event has an
 *   id made of the report's (`auditOnce`; the second insert fails with E11000 and
 *   is skipped), the lifecycle ignores an event that no longer applies and the
 *   transition audits itself the same way (see transition.ts), the username is a
 *   plain $set. A report is marked seen last, so a crash anywhere before loses
 *   nothing: the agent resends it and the missing steps are done then.
 * Email reports are counted by `recordDelivery` (delivery.ts) under the same report-keyed id.
 */
export function applyReports(ctx: Ctx, endpointId: string, reports: Report[]): Promise<string[]> {
  let q = queues.get(ctx);
  if (!q) queues.set(ctx, (q = new SerialQueues()));
  return q.run(endpointId, () => applyInOrder(ctx, endpointId, reports));
}

async function applyInOrder(ctx: Ctx, endpointId: string, reports: Report[]): Promise<string[]> {
  const done: string[] = [];
  for (const r of reports) {
    const g = await grantOf(ctx.c, r.grantId, endpointId);
    if (g && !(await alreadySeen(ctx, r.id))) {
      await applyOne(ctx, endpointId, g, r);
      await markSeen(ctx, r.id, endpointId);
    }
    // Unknown grants and repeats are acknowledged too, or the agent would resend them forever.
    done.push(r.id);
  }
  return done;
}

async function applyOne(ctx: Ctx, endpointId: string, g: GrantDoc, r: Report): Promise<void> {
  const actor = agentActor(endpointId);
  // A new name only from a new account (created): after a re-enrollment the grant's new agent makes one.
  if (r.username && (!g.username || (r.type === 'created' && r.username !== g.username))) await ctx.c.grants.updateOne({ _id: g._id }, { $set: { username: r.username } });
  if (r.type === 'email-sent' || r.type === 'email-failed') {
    await recordDelivery(ctx, g._id, r.type === 'email-sent' ? { ok: true } : { ok: false, error: r.detail ?? 'unknown' }, 'endpoint', actor, reportAuditId(endpointId, r.id));
    return;
  }
  await auditOnce(ctx.c, reportAuditId(endpointId, r.id), {
    actor,
    type: AUDIT_TYPES[r.type] ?? `agent.${r.type}`,
    grantId: g._id,
    endpointId,
    detail: { agentAt: r.at, ...(r.username ? { username: r.username } : {}), ...(r.detail ? { detail: r.detail } : {}) },
  });
  const event = toEvent(r);
  if (r.type === 'ended-by-user') await endedByUser(ctx, g, r.detail ?? '');
  else if (event) await applyEvent(ctx, g._id, event, actor);
  if (r.type === 'password-reset') await resetDelivery(ctx, g._id);
  // An elevation's baseline, kept for a handover to a re-enrolled agent (messages.ts Plan.wasMember).
  const baseline = r.type === 'enabled' && g.operation === 'elevate-account' ? /was a member before: (yes|no)/.exec(r.detail ?? '') : null;
  if (baseline && g.wasMember === undefined) await ctx.c.grants.updateOne({ _id: g._id }, { $set: { wasMember: baseline[1] === 'yes' } });
}

/**
 * `jit end` on the endpoint: a revoke by the person there, named `endpoint-user:<host>\\<account>`
 * (the host as enrolled, the account as the agent proved it). The agent is removing it already;
 * the revoke's deletion check is scheduled as for any revoke.
 */
async function endedByUser(ctx: Ctx, g: GrantDoc, account: string): Promise<void> {
  const who = /^[\w.\\@$ -]{1,256}$/.test(account) ? account : 'unknown';
  const revoked = await applyEvent(ctx, g._id, { type: 'revoke' }, `endpoint-user:${g.hostname}\\${who}`);
  if (revoked?.state === 'revoking') await ensureRevokeUnderway(ctx, [revoked], true);
}

/** A report id remembered by an earlier batch (E11000 means another copy got there first). */
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

/** Reports audited under another name than `agent.<type>`: the guard's findings. */
const AUDIT_TYPES: Partial<Record<Report['type'], string>> = { 'rogue-admin': 'guard.rogue-admin', 'sudoers-changed': 'guard.sudoers-changed', 'ended-by-user': 'grant.ended-by-user' };

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
    case 'backstop-failed':
    case 'password-reset':
    case 'email-sent':
    case 'email-failed':
    case 'rogue-admin':
    case 'sudoers-changed':
    case 'membership-changed':
    case 'ended-by-user':
      return null;
  }
}
