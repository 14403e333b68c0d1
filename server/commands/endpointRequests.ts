/**
 * Requests filed on the endpoint itself (`jit request`): the agent forwards them for the OS
 * account it proved (agent/local/proof.ts). The person is the one whose own account that is
 * (userAccounts.personOfAccount); the request is theirs, for that endpoint and account, routed by
 * the same rules, and its actor says where it came from: `endpoint-user:<host>\<account>`.
 */
import type { Ctx } from '../context.ts';
import { apiError } from '../errors.ts';
import type { FileRequestInput } from '../schemas/requests.ts';
import type { EndpointDoc } from '../store/collections.ts';
import type { RequestDoc } from '../store/requests.ts';
import { sameText } from '../store/match.ts';
import { can } from '../web/roles.ts';
import { expireIfDue } from './decideRequest.ts';
import { fileRequest } from './requests.ts';
import { personOfAccount } from './userAccounts.ts';

export const endpointUser = (endpoint: Pick<EndpointDoc, 'hostname'>, account: string) => `endpoint-user:${endpoint.hostname}\\${account}`;

/** `input`: checked by the policy's schema, as a request from the console is (http/routes/agent.ts). */
export async function fileFromEndpoint(ctx: Ctx, endpoint: EndpointDoc, account: string, input: FileRequestInput): Promise<RequestDoc> {
  const person = await personOfAccount(ctx, endpoint.os, account);
  if (person.disabled || !can(person.role, 'requests.file')) throw apiError('auth.forbidden', `${person.email} may not file requests.`);
  return fileRequest(ctx, { ...input, operation: 'elevate-account', account, endpoint: endpoint._id }, { actor: endpointUser(endpoint, account), email: person.email, role: person.role });
}

/** How long a decided request still shows in `jit status`. */
const RECENT_MS = 24 * 3600_000;

/** `jit status`: the account's requests on this endpoint that are open or were decided in the last day, newest first. */
export async function requestsFromEndpoint(ctx: Ctx, endpoint: EndpointDoc, account: string, now = new Date()): Promise<RequestDoc[]> {
  const found = await ctx.c.requests.find({ endpointId: endpoint._id, account: sameText(account) }).sort({ createdAt: -1 }).limit(50).toArray();
  const current = await Promise.all(found.map((r) => expireIfDue(ctx, r, now)));
  return current.filter((r) => r.state === 'pending' || now.getTime() - (r.decidedAt ?? r.updatedAt).getTime() < RECENT_MS).slice(0, 20);
}

/** A request this endpoint filed for `account`; any other is "not found". */
export async function requestFromEndpoint(ctx: Ctx, endpoint: EndpointDoc, account: string, id: string): Promise<RequestDoc> {
  const r = await ctx.c.requests.findOne({ _id: id });
  if (!r || r.endpointId !== endpoint._id || r.account?.toLowerCase() !== account.toLowerCase()) throw apiError('request.not_found');
  return expireIfDue(ctx, r);
}
