import { Router } from 'express';
import { setEndpointTags } from '../../commands/endpointTags.ts';
import { createEnrollmentToken } from '../../commands/enrollment.ts';
import { listEndpoints, presentOneEndpoint } from '../../commands/listEndpoints.ts';
import type { Ctx } from '../../context.ts';
import { endpointRefSchema, endpointTagsSchema } from '../../schemas/endpoints.ts';
import { enrollmentTokenSchema } from '../../schemas/enrollment.ts';
import { validate } from '../validate.ts';

export function endpointRoutes(ctx: Ctx): Router {
  const r = Router();

  r.get('/endpoints', async (_req, res) => {
    res.json({ endpoints: await listEndpoints(ctx) });
  });

  /** The endpoint's tags, replaced whole (admins: 'endpoints.write'). */
  r.put('/endpoints/:id/tags', async (req, res) => {
    const { id } = validate(endpointRefSchema, req.params);
    const { tags } = validate(endpointTagsSchema, req.body ?? {});
    res.json(await presentOneEndpoint(ctx, await setEndpointTags(ctx, id, tags, res.locals.actor)));
  });

  r.post('/enrollment-tokens', async (req, res) => {
    const { ttlMinutes } = validate(enrollmentTokenSchema, req.body ?? {});
    const { token, expiresAt } = await createEnrollmentToken(ctx, res.locals.actor, ttlMinutes);
    res.status(201).json({ token, expiresAt: expiresAt.toISOString() });
  });

  return r;
}
