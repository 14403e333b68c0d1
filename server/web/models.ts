/**
 * What the console's views show, built on the API's presenters so both say the same.
 */
import { isOnline } from '../agents/presence.ts';
import type { Ctx } from '../context.ts';
import { LIVE_STATES, isFinal } from '../domain/lifecycle.ts';
import { presentEndpoint } from '../presenters/endpoint.ts';
import { presentGrant } from '../presenters/grant.ts';
import type { EndpointDoc, GrantDoc } from '../store/collections.ts';

/** A grant row: the API's grant plus the next deadline for the countdown. */
export function grantRow(g: GrantDoc, now = new Date()) {
  const p = presentGrant(g);
  const next =
    isFinal(g.state) ? null
    : g.enableAt > now && g.state !== 'enabled' ? { label: 'enabled in', at: p.enableAt }
    : g.endAt > now ? { label: 'ends in', at: p.endAt }
    : { label: 'ended', at: p.endAt };
  return { ...p, live: !isFinal(g.state), next, mailFailed: g.delivery.status === 'failed' };
}

/** Every endpoint as the API shows it (online, active grants), by hostname. */
export async function endpointRows(ctx: Ctx) {
  const endpoints = await ctx.c.endpoints.find().sort({ hostname: 1 }).toArray();
  const active = await ctx.c.grants
    .aggregate<{ _id: string; n: number }>([{ $match: { state: { $in: [...LIVE_STATES] } } }, { $group: { _id: '$endpointId', n: { $sum: 1 } } }])
    .toArray();
  const counts = new Map(active.map((a) => [a._id, a.n]));
  return endpoints.map((e: EndpointDoc) => presentEndpoint(e, isOnline(ctx, e), counts.get(e._id) ?? 0));
}
