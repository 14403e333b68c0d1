import { Router } from 'express';
import { deletePolicy, endpointScope, savePolicy, serverPolicy, type Scope } from '../../commands/smtpPolicies.ts';
import { testEndpointSmtp, testServerSmtp } from '../../commands/smtpTests.ts';
import type { Ctx } from '../../context.ts';
import { apiError } from '../../errors.ts';
import { presentSmtpPolicy } from '../../presenters/smtp.ts';
import { endpointParam, serverSmtpTestInput, smtpPolicyInput, smtpTestInput } from '../../schemas/smtp.ts';
import { validate } from '../validate.ts';

/** The Agent Settings policy (default + per-endpoint overrides) and the server's own SMTP. */
export function settingsRoutes(ctx: Ctx): Router {
  const r = Router();

  r.get('/agent-settings', async (_req, res) => {
    const docs = await ctx.c.smtpPolicies.find({ _id: { $ne: 'server' } }).toArray();
    const d = docs.find((x) => x._id === 'default');
    res.json({ default: d ? presentSmtpPolicy(d) : null, overrides: docs.filter((x) => x._id !== 'default').map(presentSmtpPolicy) });
  });

  const save = async (scope: Scope, body: unknown, actor: string) => presentSmtpPolicy(await savePolicy(ctx, scope, validate(smtpPolicyInput, body), actor));

  r.put('/agent-settings', async (req, res) => {
    res.json(await save('default', req.body, res.locals.actor));
  });
  r.put('/agent-settings/endpoints/:endpointId', async (req, res) => {
    res.json(await save(await endpointScopeOf(ctx, req.params), req.body, res.locals.actor));
  });
  r.delete('/agent-settings/endpoints/:endpointId', async (req, res) => {
    await deletePolicy(ctx, await endpointScopeOf(ctx, req.params), res.locals.actor);
    res.status(204).end();
  });
  r.get('/server-smtp', async (_req, res) => {
    const d = await serverPolicy(ctx);
    res.json(d ? presentSmtpPolicy(d) : null);
  });
  r.put('/server-smtp', async (req, res) => {
    res.json(await save('server', req.body, res.locals.actor));
  });

  r.post('/server-smtp/test', async (req, res) => {
    const { to } = validate(serverSmtpTestInput, req.body ?? {});
    res.json(await testServerSmtp(ctx, res.locals.actor, to));
  });

  r.post('/agent-settings/test', async (req, res) => {
    const { endpoint, to } = validate(smtpTestInput, req.body);
    const { hostname: _h, ...result } = await testEndpointSmtp(ctx, endpoint, res.locals.actor, to);
    res.json(result);
  });

  return r;
}

async function endpointScopeOf(ctx: Ctx, params: unknown): Promise<Scope> {
  const { endpointId } = validate(endpointParam, params);
  if (!(await ctx.endpointCache.get(endpointId))) throw apiError('endpoint.not_found');
  return endpointScope(endpointId);
}
