import type { Ctx } from '../context.ts';
import type { EndpointDoc } from '../store/collections.ts';

/**
 * Online = holding a long-poll now, or seen within one poll period plus slack
 * (between two polls an agent is briefly not connected).
 */
export function isOnline(ctx: Ctx, e: EndpointDoc, now = Date.now()): boolean {
  return ctx.hub.isConnected(e._id) || now - e.lastSeenAt.getTime() < (ctx.config.longPollSeconds + 10) * 1000;
}
