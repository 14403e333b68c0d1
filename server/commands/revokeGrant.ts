import type { Ctx } from '../context.ts';
import { isFinal } from '../domain/lifecycle.ts';
import { apiError } from '../errors.ts';
import type { GrantDoc } from '../store/collections.ts';
import { queueInstruction } from './instructions.ts';
import { verifyAt } from './scheduleGrant.ts';
import { applyEvent } from './transition.ts';

/** Ends a grant early: the agent logs the user off and deletes the account now. */
export async function revokeGrant(ctx: Ctx, grantId: string, actor: string): Promise<GrantDoc> {
  // A grant that already ended comes back unchanged (revoke never ends a grant by itself).
  const g = await applyEvent(ctx, grantId, { type: 'revoke' }, actor);
  if (!g) throw apiError('grant.not_found');
  if (isFinal(g.state)) throw apiError('grant.not_revocable');
  await queueInstruction(ctx, g, 'revoke');
  await ctx.scheduler.schedule('grant.verify', verifyAt(ctx, new Date()), { grantId, attempt: 0 });
  return g;
}
