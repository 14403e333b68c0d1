import { Router } from 'express';
import { createEnrollmentToken } from '../../commands/enrollment.ts';
import { listEndpoints } from '../../commands/listEndpoints.ts';
import type { Ctx } from '../../context.ts';
import { enrollmentTokenSchema } from '../../schemas/enrollment.ts';
import { validate } from '../validate.ts';

export function endpointRoutes(ctx: Ctx): Router {
  const r = Router();

  r.get('/endpoints', async (_req, res) => {
    res.json({ endpoints: await listEndpoints(ctx) });
  });

  r.post('/enrollment-tokens', async (req, res) => {
    const { ttlMinutes } = validate(enrollmentTokenSchema, req.body ?? {});
    const { token, expiresAt } = await createEnrollmentToken(ctx, res.locals.actor, ttlMinutes);
    res.status(201).json({ token, expiresAt: expiresAt.toISOString() });
  });

  return r;
}
