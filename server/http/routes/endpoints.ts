import { Router } from 'express';
import { isOnline } from '../../agents/presence.ts';
import { createEnrollmentToken } from '../../commands/enrollment.ts';
import type { Ctx } from '../../context.ts';
import { LIVE_STATES } from '../../domain/lifecycle.ts';
import { presentEndpoint } from '../../presenters/endpoint.ts';

export function endpointRoutes(ctx: Ctx): Router {
  const r = Router();

  r.get('/endpoints', async (_req, res) => {
    const endpoints = await ctx.c.endpoints.find().sort({ hostname: 1 }).toArray();
    const active = await ctx.c.grants
      .aggregate<{ _id: string; n: number }>([{ $match: { state: { $in: [...LIVE_STATES] } } }, { $group: { _id: '$endpointId', n: { $sum: 1 } } }])
      .toArray();
    const counts = new Map(active.map((a) => [a._id, a.n]));
    res.json({ endpoints: endpoints.map((e) => presentEndpoint(e, isOnline(ctx, e), counts.get(e._id) ?? 0)) });
  });

  r.post('/enrollment-tokens', async (_req, res) => {
    const { token, expiresAt } = await createEnrollmentToken(ctx, res.locals.actor);
    res.status(201).json({ token, expiresAt: expiresAt.toISOString() });
  });

  return r;
}
