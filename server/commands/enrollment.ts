import { randomUUID } from 'node:crypto';
import type { EnrollRequest, EnrollResponse } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';
import { SerialQueues } from '../db/serialQueues.ts';
import { ApiError, apiError, invalid } from '../errors.ts';
import { hashToken, newToken, sameSecret } from '../secrets.ts';
import { agentActor, audit } from '../store/audit.ts';
import type { EndpointDoc } from '../store/collections.ts';
import { LIVE_STATES } from '../domain/lifecycle.ts';
import { queueInstruction } from './instructions.ts';

/** Creates a one-time enrollment token, valid `ttlMinutes` (else the configured lifetime); only its hash is stored. */
export async function createEnrollmentToken(ctx: Ctx, actor: string, ttlMinutes = ctx.config.enrollmentTokenTtlMinutes): Promise<{ token: string; expiresAt: Date }> {
  const token = newToken('jite');
  const now = new Date();
  const expiresAt = new Date(now.getTime() + ttlMinutes * 60_000);
  await ctx.c.enrollmentTokens.insertOne({ _id: hashToken(token), createdBy: actor, createdAt: now, expiresAt });
  await audit(ctx.c, { actor, type: 'enrollment.token-created', detail: { expiresAt } });
  return { token, expiresAt };
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * Why a hostname is not a DNS name (RFC 1123: dot-separated labels of 1–63
 * letters, digits and hyphens, no hyphen at either end, 253 characters in
 * all), or null. Why it matters: the hostname goes into every email about the
 * endpoint, so a CR/LF in it would break them all.
 */
export function hostnameProblem(hostname: string): string | null {
  if (hostname.length > 253) return 'must be at most 253 characters';
  if (!hostname.split('.').every((l) => LABEL.test(l))) {
    return 'must be a DNS name: dot-separated labels of 1-63 letters, digits and hyphens, not starting or ending with a hyphen';
  }
  return null;
}

/** One enrollment per hostname at a time, in this process (one server per database), so two cannot both take a free name. */
const enrollQueues = new WeakMap<Ctx['c'], SerialQueues>();

/**
 * Trades a valid enrollment token for the endpoint's own credential.
 *
 * Hostnames are unique among endpoints (in any letter case). The same machine
 * enrolling again (same `machineId` and OS) replaces its record in place: the
 * endpoint keeps its id and grants, gets a new credential, and the old one
 * stops working. Another machine, or one without an identity, asking for a
 * taken hostname gets 409 `endpoint.hostname_taken`. A refused request (a bad
 * hostname, an unknown token, a taken name) stores nothing and leaves the token
 * usable.
 *
 * A request that fails part-way (the database gone) is not undone: the steps are
 * separate writes. Once the token is claimed it is spent, and once the record is
 * written a re-enrolled machine's old credential has stopped working, though the
 * agent never got the new one; it needs a new token then. Enrolling again with it
 * is safe: the record is replaced again and the live grants are not handed over
 * twice (`handOverLiveGrants`). Why the route lifts the request deadline before the
 * first write (`beforeWrites`; http/deadline.ts): a 503 while it still runs would
 * be exactly that case, made by a database that is only slow.
 *
 * The token is claimed by deleting it: of two agents racing with one token,
 * only one deletes it. Why not a conditional update: FerretDB's SQLite backend
 * uses an index only for filters on `_id` alone, so the claim stays O(1)
 * however many tokens exist.
 */
export async function enroll(ctx: Ctx, req: EnrollRequest, beforeWrites: () => void = () => {}): Promise<EnrollResponse> {
  const problem = hostnameProblem(req.hostname);
  if (problem) throw invalid([{ field: 'hostname', message: problem }]);
  let queues = enrollQueues.get(ctx.c);
  if (!queues) enrollQueues.set(ctx.c, (queues = new SerialQueues()));
  return queues.run(req.hostname.toLowerCase(), () => enrollNow(ctx, req, beforeWrites));
}

async function enrollNow(ctx: Ctx, req: EnrollRequest, beforeWrites: () => void): Promise<EnrollResponse> {
  const now = new Date();
  const tokenId = hashToken(req.token);
  const token = await ctx.c.enrollmentTokens.findOne({ _id: tokenId });
  if (!token || token.expiresAt <= now) throw apiError('enrollment.invalid_token');
  const holders = await ctx.endpointCache.holders(req.hostname);
  const same = holders.length === 1 && req.machineId && holders[0]!.machineId === req.machineId && holders[0]!.os === req.os ? holders[0]! : null;
  if (holders.length && !same) {
    const ids = holders.map((e) => e._id).join(', ');
    throw new ApiError('endpoint.hostname_taken', [{ field: 'hostname', message: `${req.hostname} is enrolled as endpoint ${ids} from another machine` }]);
  }
  // What an admin gave the endpoint stays when the same machine enrolls again (read fresh: the cache's copy may predate it).
  const tags = same ? (await ctx.c.endpoints.findOne({ _id: same._id }, { projection: { tags: 1 } }))?.tags : undefined;
  beforeWrites();
  const claimed = await ctx.c.enrollmentTokens.deleteOne({ _id: tokenId });
  if (claimed.deletedCount !== 1) throw apiError('enrollment.invalid_token');
  const secret = newToken('jita');
  const endpoint: EndpointDoc = {
    _id: same?._id ?? randomUUID(),
    hostname: req.hostname,
    os: req.os,
    agentVersion: req.agentVersion,
    credentialHash: hashToken(secret),
    ...(req.machineId ? { machineId: req.machineId } : {}),
    enrolledAt: same?.enrolledAt ?? now,
    ...(same ? { reenrolledAt: now } : {}),
    lastSeenAt: now,
    ...(tags?.length ? { tags } : {}),
  };
  if (same) {
    await ctx.c.endpoints.replaceOne({ _id: same._id }, endpoint);
    ctx.endpointCache.replaced(endpoint);
  } else {
    await ctx.c.endpoints.insertOne(endpoint);
    await ctx.endpointCache.enrolled(endpoint);
  }
  const detail = { hostname: req.hostname, os: req.os, agentVersion: req.agentVersion, tokenCreatedBy: token.createdBy };
  await audit(ctx.c, { actor: agentActor(endpoint._id), type: same ? 'endpoint.re-enrolled' : 'endpoint.enrolled', endpointId: endpoint._id, detail });
  if (same) await handOverLiveGrants(ctx, endpoint._id);
  return { endpointId: endpoint._id, credential: `${endpoint._id}.${secret}` };
}

/**
 * A machine enrolling again starts with an empty state: its new agent knows none of the grants
 * the old one ran, and its sweep removes their accounts as unexplained. So each live grant's plan
 * is sent again: the new agent creates a fresh account (and mails fresh credentials) for what
 * is left of the window, or reports it removed at once if the window is over or it was revoked.
 * A grant that has an instruction of that kind still waiting for the endpoint is skipped: the
 * new agent gets that one (a re-enrollment repeated before the agent polled hands over once).
 */
async function handOverLiveGrants(ctx: Ctx, endpointId: string): Promise<void> {
  // Not _id filters: scans, but once per re-enrollment.
  const live = await ctx.c.grants.find({ endpointId, state: { $in: [...LIVE_STATES] } }).toArray();
  const waiting = new Set((await ctx.c.instructions.find({ endpointId, ackedAt: null }, { projection: { grantId: 1, kind: 1 } }).toArray()).map((i) => `${i.grantId}:${i.kind}`));
  for (const g of live) {
    // A grant already ending must not get a new account: the new agent only reports it gone.
    const kind = g.revokeRequested ? 'revoke' : g.state === 'revocation-failed' ? 'expire' : 'provision';
    if (waiting.has(`${g._id}:${kind}`)) continue;
    await queueInstruction(ctx, g, kind);
    await audit(ctx.c, { actor: agentActor(endpointId), type: 'grant.handed-over', grantId: g._id, endpointId, detail: { reason: 'the endpoint enrolled again: its new agent receives the plan' } });
  }
}

/** Finds the endpoint a bearer credential belongs to, or null. */
export async function authenticateAgent(ctx: Ctx, credential: string): Promise<EndpointDoc | null> {
  const dot = credential.indexOf('.');
  if (dot < 1) return null;
  const e = await ctx.endpointCache.get(credential.slice(0, dot));
  return e && sameSecret(e.credentialHash, hashToken(credential.slice(dot + 1))) ? e : null;
}
