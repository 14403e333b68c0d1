import type { Ctx } from '../context.ts';
import { LIVE_STATES } from '../domain/lifecycle.ts';
import { presentEndpoint } from '../presenters/endpoint.ts';
import type { EndpointDoc } from '../store/collections.ts';

/** Every endpoint as the API and the console show it (online, active grants), by hostname. */
export async function listEndpoints(ctx: Ctx) {
  const endpoints = await ctx.c.endpoints.find().sort({ hostname: 1 }).toArray();
  const active = await ctx.c.grants
    .aggregate<{ _id: string; n: number }>([{ $match: { state: { $in: [...LIVE_STATES] } } }, { $group: { _id: '$endpointId', n: { $sum: 1 } } }])
    .toArray();
  const counts = new Map(active.map((a) => [a._id, a.n]));
  return endpoints.map((e) => presentEndpoint({ ...e, lastSeenAt: ctx.presence.lastSeen(e) }, ctx.presence.isOnline(e), counts.get(e._id) ?? 0));
}

/** One endpoint as listEndpoints shows it. */
export async function presentOneEndpoint(ctx: Ctx, e: EndpointDoc) {
  const active = await ctx.c.grants.countDocuments({ endpointId: e._id, state: { $in: [...LIVE_STATES] } });
  return presentEndpoint({ ...e, lastSeenAt: ctx.presence.lastSeen(e) }, ctx.presence.isOnline(e), active);
}
