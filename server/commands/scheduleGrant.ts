import type { Ctx } from '../context.ts';
import type { GrantDoc } from '../store/collections.ts';

/**
 * Puts the grant's server-side deadlines on the durable scheduler. Safe to call
 * again (at every start) because jobs are unique per grant and step.
 */
export async function scheduleGrantJobs(ctx: Ctx, g: GrantDoc): Promise<void> {
  await ctx.scheduler.schedule('grant.enable', g.enableAt, { grantId: g._id });
  await ctx.scheduler.schedule('grant.expire', g.endAt, { grantId: g._id });
  await ctx.scheduler.schedule('grant.verify', verifyAt(ctx, g.endAt), { grantId: g._id, attempt: 0 });
}

export function verifyAt(ctx: Ctx, from: Date, attempt = 0): Date {
  const delay = Math.min(ctx.config.verifyGraceSeconds * 2 ** attempt, ctx.config.verifyRetryMaxSeconds);
  return new Date(from.getTime() + delay * 1000);
}
