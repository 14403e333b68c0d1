import { DateTime } from 'luxon';
import type { Request, Response, Router } from 'express';
import { OS_LABEL } from '../../../protocol/groups.ts';
import { planGrants, writeGrants } from '../../commands/createGrants.ts';
import { createGrantsOnce, idempotencyKey } from '../../commands/idempotentCreate.ts';
import { liftDeadline } from '../../http/deadline.ts';
import { newToken } from '../../secrets.ts';
import { ApiError } from '../../errors.ts';
import { enableAtFor } from '../../domain/lifecycle.ts';
import type { EndpointDoc } from '../../store/collections.ts';
import { base, need, str, type Web } from '../page.ts';
import { listEndpoints } from '../../commands/listEndpoints.ts';
import { render } from '../render.ts';
import { checkForm, duration, emptyForm, formErrors, groupChoices, quick, readForm, toInstant, type FieldErrors, type WizardForm } from '../wizardForm.ts';

const ZONES = Intl.supportedValuesOf('timeZone');

/**
 * The JIT wizard: form → summary → create. Both steps check the form with the
 * API's schema; the create step stores the grants as the API does. The summary's
 * form carries a fresh token (`idem`), the create's idempotency key: the same form
 * sent twice (a reload, a retry after an error page) gets the grants of the first
 * and makes none. The create is out of the request deadline from its first write
 * (see http/deadline.ts).
 */
export function wizardPages(r: Router, { ctx }: Web): void {
  const showForm = async (res: Response, f: WizardForm, errors: FieldErrors = {}, status = 200) => {
    const endpoints = await listEndpoints(ctx);
    const chosen = endpoints.find((e) => e.id === f.endpoint || e.hostname === f.endpoint) ?? null;
    render(res, 'wizard', {
      ...base(res, 'New access', 'wizard'),
      f,
      temporary: f.operation !== 'elevate-account',
      logoff: f.endAction !== 'notify',
      accounts: chosen?.accounts ?? [],
      errors,
      errorCount: Object.keys(errors).length,
      endpoints: endpoints.map((e) => ({ ...e, osLabel: OS_LABEL[e.os], selected: e.id === chosen?.id, accountList: e.accounts.join(' ') })),
      groups: groupChoices(chosen?.os ?? null, f.group),
      zones: ZONES,
      duration: duration(f),
      leadTimeSeconds: ctx.config.leadTimeSeconds,
    }, status);
  };

  r.get('/grants/new', async (req, res) => {
    need(res, 'grants.write');
    const f = { ...emptyForm(), email: str(req.query.email), endpoint: str(req.query.endpoint) };
    await showForm(res, quick(f, 'start-now'));
  });

  r.post('/grants/new', async (req: Request, res: Response) => {
    need(res, 'grants.write');
    const f = readForm(req.body);
    const action = str(req.body.action);
    if (action === 'start-now' || action === 'plus-1h' || action === 'plus-4h') return showForm(res, quick(f, action));
    if (action === 'edit') return showForm(res, f);
    const { input, endpoint, errors } = await checkForm(ctx, f);
    if (!input || !endpoint) return showForm(res, f, errors, 400);
    if (action !== 'create') return showSummary(res, f, endpoint);
    try {
      const actor = res.locals.actor;
      const key = idempotencyKey(str(req.body.idem) || undefined, 'idem');
      const plan = () => planGrants(ctx, input, actor);
      const writing = () => liftDeadline(res);
      let grants;
      if (key) grants = await createGrantsOnce(ctx, actor, key, f, plan, writing);
      else {
        const planned = await plan();
        writing();
        grants = await writeGrants(ctx, planned);
      }
      res.redirect(303, `/grants/${grants[0]!._id}?created=1`);
    } catch (err) {
      if (err instanceof ApiError && err.fields.length) return showForm(res, f, formErrors(err.fields), 400);
      throw err;
    }
  });

  const showSummary = (res: Response, f: WizardForm, e: EndpointDoc) => {
    const start = toInstant(f.start, f.tz)!;
    const end = toInstant(f.end, f.tz)!;
    const lead = ctx.config.leadTimeSeconds;
    const now = new Date();
    const enable = DateTime.fromJSDate(enableAtFor(start.toJSDate(), lead, now));
    const fmt = (d: typeof start) => d.setZone(f.tz).toFormat("ccc d LLL yyyy, HH:mm:ss ZZZZ");
    render(res, 'wizardSummary', {
      ...base(res, 'Check and create', 'wizard'),
      f,
      elevate: f.operation === 'elevate-account',
      logoff: f.endAction !== 'notify',
      endpoint: { hostname: e.hostname, os: OS_LABEL[e.os] },
      enableAt: enable.toMillis() <= now.getTime() ? 'right away (the start is less than the lead time away)' : fmt(enable),
      startAt: fmt(start),
      endAt: fmt(end),
      leadTime: lead >= 60 ? `${Math.round(lead / 60)} min` : `${lead} s`,
      duration: duration(f),
      idem: newToken('idem', 16),
    });
  };
}
