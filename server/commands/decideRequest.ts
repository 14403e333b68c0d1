/**
 * Deciding access requests: approve (the grant is made by the wizard's own command, so everything
 * downstream is unchanged), deny, expire. A request's decision runs under its lock (`request:<id>`,
 * db/serialQueues.ts): two approvers deciding at once give exactly one decision and at most one
 * grant. The grant's id is derived from the request's, and written with `resume`, so an approval
 * that died between the grant and the request's new state makes the same grant again, not another.
 */
import { createHash } from 'node:crypto';
import type { Ctx } from '../context.ts';
import { isOpen, nextRequestState, type RequestEvent } from '../domain/requests.ts';
import { apiError, invalid } from '../errors.ts';
import type { ApproveInput } from '../schemas/requests.ts';
import { auditOnce } from '../store/audit.ts';
import { emailKey, type Role } from '../store/collections.ts';
import type { RequestDoc } from '../store/requests.ts';
import { planGrants, writeGrants } from './createGrants.ts';
import { noticeRequester } from './requestNotices.ts';

/** Who is asking, as the API knows them ('' email: the config's admin token, which is nobody's). */
export interface Caller {
  actor: string;
  email: string;
  role: Role;
}

/** Audits an event of a request (once per id: a retried step writes it once). */
export async function auditRequest(ctx: Ctx, r: RequestDoc, what: string, actor: string, detail: Record<string, unknown> = {}): Promise<void> {
  await auditOnce(ctx.c, `request:${r._id}:${what}`, {
    actor, type: `request.${what}`, requestId: r._id, endpointId: r.endpointId,
    detail: { email: r.requesterEmail, hostname: r.hostname, operation: r.operation, ...(r.account ? { account: r.account } : {}), group: r.group, ...detail },
  });
}

/** Moves a request by the state machine: audited first, then stored (a retry finds the audit and writes the state). */
export async function moveRequest(ctx: Ctx, r: RequestDoc, event: RequestEvent, actor: string, extra: Partial<RequestDoc> = {}): Promise<RequestDoc> {
  const to = nextRequestState(r.state, event);
  if (!to) return r;
  const now = new Date();
  await auditRequest(ctx, r, to, actor, { from: r.state, to, ...(extra.note ? { note: extra.note } : {}), ...(extra.grantId ? { grantId: extra.grantId } : {}) });
  const set = { ...extra, state: to, updatedAt: now, ...(to === 'expired' ? {} : { decidedBy: actor, decidedAt: now }) };
  await ctx.c.requests.updateOne({ _id: r._id }, { $set: set });
  ctx.log.info({ requestId: r._id, from: r.state, to, actor }, 'request transition');
  const moved = { ...r, ...set };
  noticeRequester(ctx, moved);
  return moved;
}

/** A pending request past its expiry is expired (under its lock), whoever looks at it first. */
export async function expireIfDue(ctx: Ctx, r: RequestDoc, now = new Date()): Promise<RequestDoc> {
  if (!isOpen(r.state) || r.expiresAt > now) return r;
  return ctx.grantLocks.run(`request:${r._id}`, async () => expireLocked(ctx, (await ctx.c.requests.findOne({ _id: r._id })) ?? r, now));
}

function expireLocked(ctx: Ctx, r: RequestDoc, now: Date): Promise<RequestDoc> {
  return isOpen(r.state) && r.expiresAt <= now ? moveRequest(ctx, r, { type: 'expire' }, 'system') : Promise.resolve(r);
}

/** Expires every pending request whose time is up (the server's sweep, every minute). */
export async function expireDue(ctx: Ctx, now = new Date()): Promise<number> {
  let n = 0;
  for (const r of await ctx.c.requests.find({ state: 'pending', expiresAt: { $lte: now } }).toArray()) {
    if ((await expireIfDue(ctx, r, now)).state === 'expired') n++;
  }
  return n;
}

/**
 * Approves a pending request and makes its grant. An approver may shorten the access or move its
 * start (not into the past), never lengthen it. A grant the wizard would refuse (an overlap, an
 * excluded account) refuses the approval the same way (400), and the request stays pending.
 * `byRule`: the request just stored, approved by the rule that routed it (no approver's checks).
 */
export async function approveRequest(ctx: Ctx, id: string, who: Caller, input: ApproveInput, opts: { byRule?: RequestDoc } = {}): Promise<RequestDoc> {
  return decideLocked(ctx, opts.byRule ?? id, opts.byRule ? null : who, async (r) => {
    if (input.minutes !== undefined && input.minutes > r.minutes) throw invalid([{ field: 'minutes', message: `an approval may shorten the access, not lengthen it (asked for: ${r.minutes} minutes)` }]);
    const now = new Date();
    const asked = input.startAt ?? r.startAt;
    const startAt = asked && asked > now ? asked : now;
    const endAt = new Date(startAt.getTime() + (input.minutes ?? r.minutes) * 60_000);
    const grantInput = {
      operation: r.operation, ...(r.account ? { account: r.account } : {}), endAction: 'logoff' as const, passwordlessSudo: false,
      email: r.requesterEmail, endpoints: [r.endpointId], group: r.group, startAt, endAt, serverSideSmtp: true,
    };
    const [planned] = await planGrants(ctx, grantInput, who.actor);
    const grant = { ...planned!, _id: grantIdOf(r._id), accessRequestId: r._id };
    const [stored] = await writeGrants(ctx, [grant], true);
    const note = input.note ? { note: input.note } : {};
    return moveRequest(ctx, r, { type: 'approve' }, who.actor, { grantId: stored!._id, grantStartAt: stored!.startAt, grantEndAt: stored!.endAt, ...note });
  });
}

export async function denyRequest(ctx: Ctx, id: string, who: Caller, note: string): Promise<RequestDoc> {
  return decideLocked(ctx, id, who, (r) => moveRequest(ctx, r, { type: 'deny' }, who.actor, { note }));
}

/**
 * Runs a decision under the request's lock on the request as stored, expired first if its time
 * is up: 404 when there is none, 409 when it is no longer pending, and `who` (null: a rule) must
 * be an approver who may decide it. `ref`: the id, or (a rule's approval) the request itself.
 */
function decideLocked(ctx: Ctx, ref: string | RequestDoc, who: Caller | null, decide: (r: RequestDoc) => Promise<RequestDoc>): Promise<RequestDoc> {
  const id = typeof ref === 'string' ? ref : ref._id;
  return ctx.grantLocks.run(`request:${id}`, async () => {
    // A rule's approval comes with the request it has just stored: nobody else knows its id yet.
    const found = typeof ref === 'string' ? await ctx.c.requests.findOne({ _id: id }) : ref;
    if (!found) throw apiError('request.not_found');
    const r = await expireLocked(ctx, found, new Date());
    if (!isOpen(r.state)) throw apiError('request.not_pending');
    if (who) checkApprover(r, who);
    return decide(r);
  });
}

/** Never one's own request; only the approvers the routing rule names, when it names any. */
function checkApprover(r: RequestDoc, who: Caller): void {
  const key = emailKey(who.email);
  if (key === r.requesterKey) throw apiError('request.self_approval');
  if (r.approvers.length > 0 && !r.approvers.includes(key)) throw apiError('request.not_approver');
}

/** The grant of a request: one id per request, in the UUID form grant ids have. */
export function grantIdOf(requestId: string): string {
  const h = createHash('sha256').update(`grant-of-request:${requestId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
