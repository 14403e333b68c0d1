import type { Ctx } from '../context.ts';
import type { GrantDoc } from '../store/collections.ts';
import type { RequestDoc } from '../store/requests.ts';

const iso = (d: Date | undefined) => (d ? d.toISOString() : null);

/** A request as the API shows it, with its grant's live state once approved. */
export function presentRequest(r: RequestDoc, grant?: Pick<GrantDoc, 'state'> | null) {
  return {
    id: r._id,
    state: r.state,
    requester: r.requesterEmail,
    endpointId: r.endpointId,
    hostname: r.hostname,
    os: r.os,
    operation: r.operation,
    account: r.account ?? null,
    group: r.group,
    minutes: r.minutes,
    startAt: iso(r.startAt),
    reason: r.reason,
    rule: { name: r.rule, action: r.ruleAction, approvers: r.approvers },
    decidedBy: r.decidedBy ?? null,
    decidedAt: iso(r.decidedAt),
    note: r.note ?? null,
    grant: r.grantId ? { id: r.grantId, startAt: iso(r.grantStartAt), endAt: iso(r.grantEndAt), state: grant?.state ?? null } : null,
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt.toISOString(),
  };
}

/** Requests with their grants' states, read in one query. */
export async function presentRequests(ctx: Ctx, list: RequestDoc[]) {
  const ids = list.flatMap((r) => (r.grantId ? [r.grantId] : []));
  const grants = ids.length ? await ctx.c.grants.find({ _id: { $in: ids } }, { projection: { state: 1 } }).toArray() : [];
  const byId = new Map(grants.map((g) => [g._id, g]));
  return list.map((r) => presentRequest(r, r.grantId ? byId.get(r.grantId) : null));
}
