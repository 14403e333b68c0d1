import type { Response, Router } from 'express';
import { z } from 'zod';
import { savePolicy } from '../../commands/smtpPolicies.ts';
import { ApiError } from '../../errors.ts';
import { validate } from '../../http/validate.ts';
import { smtpPolicyInput } from '../../schemas/smtp.ts';
import { base, need, str, type Web } from '../page.ts';
import { formErrors } from '../wizardForm.ts';
import { render } from '../render.ts';
import { testEndpointSmtp, testServerSmtp } from '../../commands/smtpTests.ts';
import { formOf, readSmtpForm, type SmtpForm } from '../smtpForm.ts';

const SCOPES = { default: 'Agent Settings policy (endpoints send the email)', server: 'Server-side SMTP (the server sends the email)' } as const;
type ScopeName = keyof typeof SCOPES;
const ScopeParam = z.strictObject({ scope: z.enum(['default', 'server']) });

/** The Agent Settings policy and the server's SMTP: forms with a write-only password, and tests. */
export function settingsPages(r: Router, { ctx }: Web): void {
  const page = async (res: Response, edited: { scope: ScopeName; form: SmtpForm; errors: Record<string, string[]> } | null, extra: object = {}, status = 200) => {
    const docs = await ctx.c.smtpPolicies.find({ _id: { $in: ['default', 'server'] } }).toArray();
    const forms = (Object.keys(SCOPES) as ScopeName[]).map((scope) => ({
      scope,
      title: SCOPES[scope],
      form: edited?.scope === scope ? edited.form : formOf(docs.find((d) => d._id === scope) ?? null),
      errors: edited?.scope === scope ? edited.errors : {},
    }));
    const endpoints = await ctx.c.endpoints.find().sort({ hostname: 1 }).project<{ _id: string; hostname: string }>({ hostname: 1 }).toArray();
    render(res, 'settings', { ...base(res, 'Agent Settings', 'settings'), forms, endpoints, ...extra }, status);
  };

  r.get('/settings', (_req, res) => page(res, null));

  r.post('/settings/:scope', async (req, res) => {
    need(res, 'settings.write');
    const { scope } = validate(ScopeParam, req.params);
    const before = await ctx.c.smtpPolicies.findOne({ _id: scope });
    const { form, input } = readSmtpForm(req.body, Boolean(before?.passwordBox));
    try {
      await savePolicy(ctx, scope, validate(smtpPolicyInput, input), res.locals.actor);
      await page(res, null, { saved: SCOPES[scope] });
    } catch (err) {
      if (!(err instanceof ApiError) || !err.fields.length) throw err;
      await page(res, { scope, form, errors: formErrors(err.fields) }, {}, 400);
    }
  });

  r.post('/settings-test', async (req, res) => {
    need(res, 'settings.write');
    const endpoint = str(req.body.endpoint);
    const to = str(req.body.to) || undefined;
    try {
      const result = endpoint ? await testEndpointSmtp(ctx, endpoint, res.locals.actor, to) : { ...(await testServerSmtp(ctx, res.locals.actor, to)), hostname: 'the server' };
      await page(res, null, { test: { ...result, ...(to ? { to } : {}) } });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      await page(res, null, { test: { ok: false, hostname: endpoint || 'the server', reason: err.message } });
    }
  });
}
