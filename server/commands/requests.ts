/**
 * Filing, reading and cancelling access requests. A request is checked whole before anything is
 * stored (a refusal leaves no trace); the rules decide at once (domain/rules.ts): auto-approve
 * goes straight on to the grant (commands/decideRequest.ts), deny is stored denied with the rule
 * named, require-approval waits for an approver. Every transition is an audit event.
 */
import { randomUUID } from 'node:crypto';
import { OS_LABEL, osHonours } from '../../protocol/groups.ts';
import type { Ctx } from '../context.ts';
import { isOpen } from '../domain/requests.ts';
import { decide } from '../domain/rules.ts';
import { ApiError, apiError, invalid } from '../errors.ts';
import type { FileRequestInput } from '../schemas/requests.ts';
import { emailKey, type EndpointDoc } from '../store/collections.ts';
import { ambiguous, findEndpoints } from '../store/endpoints.ts';
import type { RequestDoc } from '../store/requests.ts';
import { can } from '../web/roles.ts';
import { approveRequest, auditRequest, expireIfDue, moveRequest, type Caller } from './decideRequest.ts';
import { noticeApprovers } from './requestNotices.ts';
import { currentRules, idpGroupsOf, requestFacts } from './requestRules.ts';
import { accountsOf, otherOwner, ownAccount } from './userAccounts.ts';

/** The requester's own account on an endpoint (commands/userAccounts.ts: the admin's mapping, else the email's local part). */
export { ownAccount };

/** A request for one endpoint, checked: its endpoint and the account it elevates, or what is wrong (nothing stored). */
async function checkOne(ctx: Ctx, input: FileRequestInput, who: Caller, ref: string, field: string) {
  const matches = await findEndpoints(ctx.c, ref);
  const endpoint = matches.length === 1 ? matches[0]! : null;
  if (!endpoint) return { issues: [{ field, message: matches.length > 1 ? ambiguous(ref, matches) : `unknown endpoint ${JSON.stringify(ref)}` }] };
  // The requester's own account: the admin's mapping for the endpoint's OS, else the email's local part.
  const account = input.operation === 'elevate-account' ? ownAccount(who.email, endpoint.os, await accountsOf(ctx, who.email)) : undefined;
  // alice@corp and alice@partner would both be `alice`: neither may elevate it until one is mapped.
  const owner = account ? await otherOwner(ctx, endpoint.os, account, who.email) : undefined;
  if (owner) throw apiError('request.account_shared', `Your own account on ${endpoint.hostname} (${account}) is also another person's own account: an admin must map yours (Users page) first.`);
  const issues = [];
  if (!osHonours(endpoint.os, input.group)) issues.push({ field: 'group', message: `${OS_LABEL[endpoint.os]} endpoint ${endpoint.hostname} has no "${input.group}" group` });
  if (input.account !== undefined && input.account.toLowerCase() !== account?.toLowerCase()) {
    issues.push({ field: 'account', message: account ? `a request elevates your own account (${account}) only` : 'temporary-access makes a new account: name none' });
  }
  return { endpoint, account, issues };
}

const noAdminToken = (who: Caller) => {
  if (!who.email) throw apiError('auth.forbidden', 'A request is filed by a person: use a user\'s API token or session, not the admin token.');
};

/**
 * `endpoints: [...]`: one request per endpoint, each routed by the rules on its own. All are
 * checked before any is stored (an unknown endpoint, a group its OS has not got, one listed twice,
 * one with a request of the person's already open for that group: nothing is filed).
 */
export async function fileRequests(ctx: Ctx, input: FileRequestInput & { endpoints: string[] }, who: Caller): Promise<RequestDoc[]> {
  noAdminToken(who);
  const checked = await Promise.all(input.endpoints.map((ref, i) => checkOne(ctx, input, who, ref, `endpoints.${i}`)));
  const issues = checked.flatMap((c) => c.issues);
  checked.forEach((c, i) => {
    if (c.endpoint && checked.findIndex((o) => o.endpoint?._id === c.endpoint!._id) < i) issues.push({ field: `endpoints.${i}`, message: `endpoint ${c.endpoint.hostname} is listed twice` });
  });
  if (issues.length) throw invalid(issues);
  const key = emailKey(who.email);
  for (const c of checked) {
    const open = await ctx.c.requests.find({ requesterKey: key, endpointId: c.endpoint!._id, group: input.group, state: 'pending' }).toArray();
    for (const o of open) if (isOpen((await expireIfDue(ctx, o)).state)) throw apiError('request.duplicate', `You already have an open request for ${input.group} on ${c.endpoint!.hostname}.`);
  }
  const filed: RequestDoc[] = [];
  for (const c of checked) filed.push(await fileRequest(ctx, { ...input, endpoint: c.endpoint!._id }, who));
  return filed;
}

export async function fileRequest(ctx: Ctx, input: FileRequestInput & { endpoint: string }, who: Caller): Promise<RequestDoc> {
  noAdminToken(who);
  const { endpoint: found, account, issues } = await checkOne(ctx, input, who, input.endpoint, 'endpoint');
  if (issues.length) throw invalid(issues);
  const endpoint = found!;
  const key = emailKey(who.email);
  // One open request per requester, endpoint and group: checked under a lock of exactly that, so
  // a person's requests for other endpoints or groups do not wait for each other.
  return ctx.grantLocks.run(`requester:${key}:${endpoint._id}:${input.group}`, async () => {
    const open = await ctx.c.requests.find({ requesterKey: key, endpointId: endpoint._id, group: input.group, state: 'pending' }).toArray();
    for (const o of open) if (isOpen((await expireIfDue(ctx, o)).state)) throw apiError('request.duplicate');
    const now = new Date();
    const decision = decide(await currentRules(ctx), requestFacts({ ...who, groups: await idpGroupsOf(ctx, who.email) }, endpoint, input.group, input.minutes, now));
    const doc: RequestDoc = {
      _id: randomUUID(), requesterEmail: who.email, requesterKey: key, requesterRole: who.role,
      endpointId: endpoint._id, hostname: endpoint.hostname, os: endpoint.os, operation: input.operation, ...(account ? { account } : {}),
      group: input.group, minutes: input.minutes, ...(input.startAt ? { startAt: input.startAt } : {}), reason: input.reason,
      state: 'pending', rule: decision.rule, ruleAction: decision.action, approvers: decision.approvers,
      createdAt: now, updatedAt: now, expiresAt: new Date(now.getTime() + ctx.config.requests.expireAfterMinutes * 60_000),
    };
    await auditRequest(ctx, doc, 'created', who.actor, { reason: doc.reason, rule: doc.rule, action: doc.ruleAction, minutes: doc.minutes });
    await ctx.c.requests.insertOne(doc);
    if (decision.action === 'deny') return moveRequest(ctx, doc, { type: 'deny' }, `rule:${decision.rule}`, { note: `denied by the rule "${decision.rule}"` });
    if (decision.action === 'auto-approve') {
      try {
        return await approveRequest(ctx, doc._id, { actor: `rule:${decision.rule}`, email: '', role: 'admin' }, {}, { byRule: doc });
      } catch (err) {
        // A grant the wizard would refuse (an overlap, an excluded account): a person decides instead.
        if (!(err instanceof ApiError && err.status === 400)) throw err;
        await auditRequest(ctx, doc, 'auto-approval-refused', `rule:${decision.rule}`, { fields: err.fields });
      }
    }
    noticeApprovers(ctx, doc);
    return doc;
  });
}

/** What the caller may see: a requester only their own; `mine` narrows anyone's list to their own. */
export async function listRequests(ctx: Ctx, who: Caller, q: { state?: RequestDoc['state']; mine?: 'true' | 'false'; limit: number }): Promise<RequestDoc[]> {
  const own = q.mine === 'true' || !can(who.role, 'read');
  const filter = { ...(own ? { requesterKey: emailKey(who.email) } : {}), ...(q.state ? { state: q.state } : {}) };
  const found = await ctx.c.requests.find(filter).sort({ createdAt: -1 }).limit(q.limit).toArray();
  return Promise.all(found.map((r) => expireIfDue(ctx, r)));
}

/** One request; another's is "not found" to a requester (nothing tells them it exists). */
export async function getRequest(ctx: Ctx, id: string, who: Caller): Promise<RequestDoc> {
  const r = await ctx.c.requests.findOne({ _id: id });
  if (!r || (!can(who.role, 'read') && r.requesterKey !== emailKey(who.email))) throw apiError('request.not_found');
  return expireIfDue(ctx, r);
}

/** The requester withdraws a pending request. */
export async function cancelRequest(ctx: Ctx, id: string, who: Caller): Promise<RequestDoc> {
  const r = await getRequest(ctx, id, who);
  if (r.requesterKey !== emailKey(who.email)) throw apiError('request.not_yours');
  return ctx.grantLocks.run(`request:${id}`, async () => {
    const now = (await ctx.c.requests.findOne({ _id: id }))!;
    if (!isOpen(now.state)) throw apiError('request.not_pending');
    return moveRequest(ctx, now, { type: 'cancel' }, who.actor);
  });
}
