import { Router } from 'express';
import { planGrants, writeGrants } from '../../commands/createGrants.ts';
import { createGrantsOnce, idempotencyKey } from '../../commands/idempotentCreate.ts';
import { resendCredentials } from '../../commands/resendCredentials.ts';
import { requestRevoke } from '../../commands/revokeGrant.ts';
import type { Ctx } from '../../context.ts';
import { apiError } from '../../errors.ts';
import { presentGrant, presentGrantWithTimeline, presentJournaledRevoke } from '../../presenters/grant.ts';
import { createGrantSchema, grantIdSchema, listGrantsSchema } from '../../schemas/grants.ts';
import { timeline } from '../../store/audit.ts';
import { grantFilter } from '../../store/grants.ts';
import { liftDeadline } from '../deadline.ts';
import { validate } from '../validate.ts';

export function grantRoutes(ctx: Ctx): Router {
  const r = Router();

  /**
   * Out of the request deadline from its first write (http/deadline.ts): a create is
   * answered when it is stored, or refused by the driver's own limits. With an
   * `Idempotency-Key` a repeat gets the grants of the first request instead of new
   * ones (commands/idempotentCreate.ts).
   */
  r.post('/grants', async (req, res) => {
    const actor = res.locals.actor;
    const key = idempotencyKey(req.get('idempotency-key'));
    const plan = () => planGrants(ctx, validate(createGrantSchema(ctx.config, new Date()), req.body), actor);
    const writing = () => liftDeadline(res);
    let grants;
    if (key) grants = await createGrantsOnce(ctx, actor, key, req.body, plan, writing);
    else {
      const planned = await plan();
      writing();
      grants = await writeGrants(ctx, planned);
    }
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

  /**
   * 200 with the grant when the database took the revoke. 202 when it did not answer in time
   * (commands/revokeGrant.ts `requestRevoke`): `journaled: true` (on the server's disk, stored
   * with its audit event once the database is back) and either pushed to the connected agent,
   * or, with the agent offline but the revoke possibly under way, `pending: true` (it is
   * finished when the database answers). 503 db.unavailable otherwise: nothing was done.
   */
  r.post('/grants/:id/revoke', async (req, res) => {
    const { id } = validate(grantIdSchema, req.params);
    const out = await requestRevoke(ctx, id, res.locals.actor, { deadlineAt: res.locals.deadlineAt, answered: () => !!res.locals.timedOut });
    if (!out.journaled) return void res.json(presentGrant(out.grant));
    res.status(202).json(presentJournaledRevoke(id, out));
  });

  r.post('/grants/:id/resend', async (req, res) => {
    const { id } = validate(grantIdSchema, req.params);
    res.status(202).json(presentGrant(await resendCredentials(ctx, id, res.locals.actor)));
  });

  return r;
}
