import { Router, type Response } from 'express';
import { approveRequest, denyRequest, type Caller } from '../../commands/decideRequest.ts';
import { putRules, rulesDoc } from '../../commands/requestRules.ts';
import { cancelRequest, fileRequest, fileRequests, getRequest, listRequests } from '../../commands/requests.ts';
import type { Ctx } from '../../context.ts';
import { RequestRules } from '../../domain/rules.ts';
import { presentRequests } from '../../presenters/request.ts';
import { approveSchema, denySchema, fileRequestSchema, listRequestsSchema, requestIdSchema } from '../../schemas/requests.ts';
import { validate } from '../validate.ts';
import { z } from 'zod';

/** The caller as a person: `user:<email>` actors have an email; the config's admin token has none. */
function caller(res: Response): Caller {
  const actor = res.locals.actor;
  return { actor, email: actor.startsWith('user:') ? actor.slice(5) : '', role: res.locals.role };
}

const one = async (ctx: Ctx, r: Parameters<typeof presentRequests>[1][number]) => (await presentRequests(ctx, [r]))[0];

/** Access requests (who may call what: web/roles.ts; who may see which: commands/requests.ts). */
export function requestRoutes(ctx: Ctx): Router {
  const r = Router();

  r.post('/requests', async (req, res) => {
    const input = validate(fileRequestSchema(ctx.config, new Date()), req.body);
    if (input.endpoints) return void res.status(201).json({ requests: await presentRequests(ctx, await fileRequests(ctx, { ...input, endpoints: input.endpoints }, caller(res))) });
    res.status(201).json(await one(ctx, await fileRequest(ctx, { ...input, endpoint: input.endpoint! }, caller(res))));
  });

  r.get('/requests', async (req, res) => {
    const list = await listRequests(ctx, caller(res), validate(listRequestsSchema, req.query));
    res.json({ requests: await presentRequests(ctx, list) });
  });

  r.get('/requests/:id', async (req, res) => {
    const { id } = validate(requestIdSchema, req.params);
    res.json(await one(ctx, await getRequest(ctx, id, caller(res))));
  });

  r.post('/requests/:id/approve', async (req, res) => {
    const { id } = validate(requestIdSchema, req.params);
    const input = validate(approveSchema(ctx.config, new Date()), req.body ?? {});
    res.json(await one(ctx, await approveRequest(ctx, id, caller(res), input)));
  });

  r.post('/requests/:id/deny', async (req, res) => {
    const { id } = validate(requestIdSchema, req.params);
    const { note } = validate(denySchema, req.body ?? {});
    res.json(await one(ctx, await denyRequest(ctx, id, caller(res), note)));
  });

  r.post('/requests/:id/cancel', async (req, res) => {
    const { id } = validate(requestIdSchema, req.params);
    res.json(await one(ctx, await cancelRequest(ctx, id, caller(res))));
  });

  r.get('/request-rules', async (_req, res) => {
    const d = await rulesDoc(ctx);
    res.json({ version: d.version, rules: d.rules });
  });

  r.put('/request-rules', async (req, res) => {
    const { rules } = validate(z.strictObject({ rules: RequestRules }), req.body);
    const d = await putRules(ctx, rules, res.locals.actor);
    res.json({ version: d.version, rules: d.rules });
  });

  return r;
}
