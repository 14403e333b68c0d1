import { Router } from 'express';
import { verifySmtp } from '../../../mail/smtp.ts';
import { deletePolicy, effectivePolicy, endpointScope, savePolicy, toSmtpSettings, type Scope } from '../../commands/smtpPolicies.ts';
import type { Ctx } from '../../context.ts';
import { apiError } from '../../errors.ts';
import { presentSmtpPolicy } from '../../presenters/smtp.ts';
import { endpointParam, smtpPolicyInput, smtpTestInput } from '../../schemas/smtp.ts';
import { audit } from '../../store/audit.ts';
import { validate } from '../validate.ts';

const ENDPOINT_TEST_MS = 30_000;

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
    const d = await ctx.c.smtpPolicies.findOne({ _id: 'server' });
    res.json(d ? presentSmtpPolicy(d) : null);
  });
  r.put('/server-smtp', async (req, res) => {
    res.json(await save('server', req.body, res.locals.actor));
  });

  r.post('/server-smtp/test', async (_req, res) => {
    const doc = await effectivePolicy(ctx, 'server');
    if (!doc) throw apiError('settings.missing');
    const result = await verifySmtp(toSmtpSettings(ctx, doc));
    await audit(ctx.c, { actor: res.locals.actor, type: 'settings.smtp-tested', detail: { from: 'server', ...result } });
    res.json(result);
  });

  r.post('/agent-settings/test', async (req, res) => {
    const { endpoint } = validate(smtpTestInput, req.body);
    const e = await ctx.c.endpoints.findOne({ $or: [{ _id: endpoint }, { hostname: endpoint }] });
    if (!e) throw apiError('endpoint.not_found');
    const result = await ctx.smtpTests.run(e._id, ENDPOINT_TEST_MS);
    if (!result) throw apiError('endpoint.no_answer');
    await audit(ctx.c, { actor: res.locals.actor, type: 'settings.smtp-tested', endpointId: e._id, detail: { from: e.hostname, ...result } });
    res.json(result);
  });

  return r;
}

async function endpointScopeOf(ctx: Ctx, params: unknown): Promise<Scope> {
  const { endpointId } = validate(endpointParam, params);
  if (!(await ctx.c.endpoints.countDocuments({ _id: endpointId }, { limit: 1 }))) throw apiError('endpoint.not_found');
  return endpointScope(endpointId);
}
