import type { Ctx } from '../context.ts';
import type { GrantDoc } from '../store/collections.ts';
import type { RequestDoc } from '../store/requests.ts';

const iso = (d: Date | undefined) => (d ? d.toISOString() : null);
/** Up to this many grants are read one by one. */
const BY_ID_UP_TO = 20;

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

/**
 * Requests with their grants' states. A few by id (FerretDB's index serves only a plain _id
 * match: `$in` reads every grant, which made each request's answer as slow as the grants
 * collection is big); a page of them in one query.
 */
export async function presentRequests(ctx: Ctx, list: RequestDoc[]) {
  const ids = list.flatMap((r) => (r.grantId ? [r.grantId] : []));
  const projection = { projection: { state: 1 } };
  const grants =
    ids.length > BY_ID_UP_TO
      ? await ctx.c.grants.find({ _id: { $in: ids } }, projection).toArray()
      : (await Promise.all(ids.map((id) => ctx.c.grants.findOne({ _id: id }, projection)))).filter((g) => g !== null);
  const byId = new Map(grants.map((g) => [g._id, g]));
  return list.map((r) => presentRequest(r, r.grantId ? byId.get(r.grantId) : null));
}
