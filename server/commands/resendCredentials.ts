import type { Ctx } from '../context.ts';
import { hasAccount } from '../domain/lifecycle.ts';
import { apiError } from '../errors.ts';
import { audit } from '../store/audit.ts';
import type { GrantDoc } from '../store/collections.ts';
import { queueInstruction } from './instructions.ts';

/**
 * Resend credentials: the old password is stored nowhere, so the agent sets a
 * new random one and sends that.
 */
export async function resendCredentials(ctx: Ctx, grantId: string, actor: string): Promise<GrantDoc> {
  const g = await ctx.c.grants.findOne({ _id: grantId });
  if (!g) throw apiError('grant.not_found');
  if (g.operation === 'elevate-account') throw apiError('grant.no_credentials');
  if (!hasAccount(g.state)) throw apiError('grant.not_active');
  await audit(ctx.c, { actor, type: 'credentials.resend-requested', grantId, endpointId: g.endpointId, detail: {} });
  await queueInstruction(ctx, g, 'resend');
  return g;
}
