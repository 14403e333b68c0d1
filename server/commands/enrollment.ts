import { randomUUID } from 'node:crypto';
import type { EnrollRequest, EnrollResponse } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';
import { apiError } from '../errors.ts';
import { hashToken, newToken, sameSecret } from '../secrets.ts';
import { agentActor, audit } from '../store/audit.ts';
import type { EndpointDoc } from '../store/collections.ts';

/** Creates a one-time enrollment token; only its hash is stored. */
export async function createEnrollmentToken(ctx: Ctx, actor: string): Promise<{ token: string; expiresAt: Date }> {
  const token = newToken('jite');
  const now = new Date();
  const expiresAt = new Date(now.getTime() + ctx.config.enrollmentTokenTtlMinutes * 60_000);
  await ctx.c.enrollmentTokens.insertOne({ _id: hashToken(token), createdBy: actor, createdAt: now, expiresAt });
  await audit(ctx.c, { actor, type: 'enrollment.token-created', detail: { expiresAt } });
  return { token, expiresAt };
}

/**
 * Trades a valid enrollment token for the endpoint's own credential. The token
 * is claimed by deleting it: of two agents racing with one token, only one
 * deletes it. Why not a conditional update: FerretDB's SQLite backend uses an
 * index only for filters on `_id` alone, so the claim stays O(1) however many
 * tokens exist.
 */
export async function enroll(ctx: Ctx, req: EnrollRequest): Promise<EnrollResponse> {
  const now = new Date();
  const endpointId = randomUUID();
  const tokenId = hashToken(req.token);
  const token = await ctx.c.enrollmentTokens.findOne({ _id: tokenId });
  if (!token || token.expiresAt <= now) throw apiError('enrollment.invalid_token');
  const claimed = await ctx.c.enrollmentTokens.deleteOne({ _id: tokenId });
  if (claimed.deletedCount !== 1) throw apiError('enrollment.invalid_token');
  const secret = newToken('jita');
  await ctx.c.endpoints.insertOne({
    _id: endpointId,
    hostname: req.hostname,
    os: req.os,
    agentVersion: req.agentVersion,
    credentialHash: hashToken(secret),
    enrolledAt: now,
    lastSeenAt: now,
  });
  await audit(ctx.c, { actor: agentActor(endpointId), type: 'endpoint.enrolled', endpointId, detail: { hostname: req.hostname, os: req.os, tokenCreatedBy: token.createdBy } });
  return { endpointId, credential: `${endpointId}.${secret}` };
}

/** Finds the endpoint a bearer credential belongs to, or null. */
export async function authenticateAgent(ctx: Ctx, credential: string): Promise<EndpointDoc | null> {
  const dot = credential.indexOf('.');
  if (dot < 1) return null;
  const e = await ctx.endpointCache.get(credential.slice(0, dot));
  return e && sameSecret(e.credentialHash, hashToken(credential.slice(dot + 1))) ? e : null;
}
