import { Router } from 'express';
import { createGrants } from '../../commands/createGrants.ts';
import { resendCredentials } from '../../commands/resendCredentials.ts';
import { revokeGrant } from '../../commands/revokeGrant.ts';
import type { Ctx } from '../../context.ts';
import { apiError } from '../../errors.ts';
import { presentGrant, presentGrantWithTimeline } from '../../presenters/grant.ts';
import { createGrantSchema, grantIdSchema, listGrantsSchema } from '../../schemas/grants.ts';
import { timeline } from '../../store/audit.ts';
import { grantFilter } from '../../store/grants.ts';
import { validate } from '../validate.ts';

export function grantRoutes(ctx: Ctx): Router {
  const r = Router();

  r.post('/grants', async (req, res) => {
    const input = validate(createGrantSchema(ctx.config, new Date()), req.body);
    const grants = await createGrants(ctx, input, res.locals.actor);
    res.status(201).json({ grants: grants.map(presentGrant) });
  });

  r.get('/grants', async (req, res) => {
    const q = validate(listGrantsSchema, req.query);
    const { limit, ...query } = q;
    const grants = await ctx.c.grants.find(grantFilter(query)).sort({ createdAt: -1 }).limit(limit).toArray();
    res.json({ grants: grants.map(presentGrant) });
  });

  r.get('/grants/:id', async (req, res) => {
    const { id } = validate(grantIdSchema, req.params);
    const g = await ctx.c.grants.findOne({ _id: id });
    if (!g) throw apiError('grant.not_found');
    res.json(presentGrantWithTimeline(g, await timeline(ctx.c, id)));
  });

  r.post('/grants/:id/revoke', async (req, res) => {
    const { id } = validate(grantIdSchema, req.params);
    res.json(presentGrant(await revokeGrant(ctx, id, res.locals.actor)));
  });

  r.post('/grants/:id/resend', async (req, res) => {
    const { id } = validate(grantIdSchema, req.params);
    res.status(202).json(presentGrant(await resendCredentials(ctx, id, res.locals.actor)));
  });

  return r;
}
