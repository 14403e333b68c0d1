import type { Request, Response, Router } from 'express';
import { GROUPS_BY_OS, OS_LABEL, osHonours } from '../../../protocol/groups.ts';
import { fileRequest } from '../../commands/requests.ts';
import { ownAccount } from '../../commands/userAccounts.ts';
import { listEndpoints } from '../../commands/listEndpoints.ts';
import { ApiError, type FieldIssue } from '../../errors.ts';
import { validate } from '../../http/validate.ts';
import { fileRequestSchema, type FileRequestInput } from '../../schemas/requests.ts';
import { base, need, str, utcParam, type Web } from '../page.ts';
import { render } from '../render.ts';
import { caller } from '../requestModels.ts';
import { offerFor, offerInput } from '../requestOffer.ts';
import { previewOrNull, previewRequest } from '../requestPreview.ts';
import { formErrors, groupReason, type FieldErrors } from '../wizardForm.ts';

/** The form's fields as typed, kept to show them again. */
interface RequestForm {
  /** elevate-account (the person's own account, the default) or temporary-access (a new account mailed to them). */
  operation: string;
  endpoint: string;
  group: string;
  minutes: string;
  /** datetime-local, UTC; empty = as soon as approved. */
  start: string;
  reason: string;
}

const readForm = (body: Record<string, unknown>): RequestForm => ({
  operation: str(body.operation) || 'elevate-account',
  endpoint: str(body.endpoint),
  group: str(body.group),
  minutes: str(body.minutes).trim(),
  start: str(body.start),
  reason: str(body.reason),
});

/** The API's fields on the form's (the account is not chosen here: the person's own, on the endpoint's OS). */
const FIELD_OF: Record<string, string> = { endAt: 'startAt', account: 'endpoint' };
const toErrors = (issues: FieldIssue[]): FieldErrors => formErrors(issues.map((i) => ({ ...i, field: FIELD_OF[i.field] ?? i.field })));

/**
 * "Request access": a person asks, on one endpoint, for their own account to be elevated (the
 * admin's mapping for the endpoint's OS, else the email's local part) or for a new temporary
 * account mailed to them. The endpoints offered are those the rules would not deny them
 * (web/requestOffer.ts). The form goes through the API's schema (fileRequestSchema) and command
 * (fileRequest), so it refuses what the API refuses, per field; a small script
 * (public/requests.js) asks GET /requests/preview what the rules would do with the values as
 * they change, and GET /requests/offer which endpoints to list.
 */
export function requestNewPages(r: Router, { ctx }: Web): void {
  const limits = ctx.config.requests;

  const defaultMinutes = Math.min(60, limits.maxMinutes);

  const showForm = async (res: Response, f: RequestForm, errors: FieldErrors = {}, status = 200, formError = '') => {
    const endpoints = await listEndpoints(ctx);
    const chosen = endpoints.find((e) => e.id === f.endpoint || e.hostname.toLowerCase() === f.endpoint.toLowerCase()) ?? null;
    const who = caller(res);
    const mapping = res.locals.signed.user.accounts;
    const elevate = f.operation !== 'temporary-access';
    const offer = await offerFor(ctx, who, endpoints, offerInput(f.group, f.minutes, defaultMinutes));
    render(res, 'requestNew', {
      ...base(res, 'Request access', 'requestNew'),
      f,
      elevate,
      errors,
      errorCount: Object.keys(errors).length,
      formError,
      endpoints: endpoints.map((e) => {
        // What the approval's grant would refuse anyway: say so before anyone waits for it.
        const cannot = e.capabilities.includes('elevate-account') ? '' : 'its agent cannot elevate accounts yet';
        const selected = e.id === chosen?.id;
        // A denied endpoint is left out of the list, unless it is the one already chosen (the preview says why).
        const denied = offer.deniedBy.get(e.id) ?? '';
        const label = `${e.hostname} — ${OS_LABEL[e.os]}`;
        return {
          id: e.id, os: e.os, label, selected, cannot, denied,
          account: ownAccount(who.email, e.os, mapping),
          text: elevate && cannot ? `${label} — ${cannot}` : label,
          hidden: Boolean(denied) && !selected,
          disabled: (elevate && Boolean(cannot)) || (Boolean(denied) && !selected),
        };
      }),
      offerNote: offer.note,
      account: chosen ? ownAccount(who.email, chosen.os, mapping) : '',
      mapped: Boolean(mapping && Object.keys(mapping).length),
      groups: limits.groups.map((g) => ({
        value: g,
        checked: g === f.group,
        allowedOs: Object.entries(GROUPS_BY_OS).filter(([, gs]) => gs.includes(g)).map(([o]) => o).join(' '),
        disabledReason: chosen && !osHonours(chosen.os, g) ? groupReason(chosen.os, g) : null,
      })),
      maxMinutes: limits.maxMinutes,
      reasonMin: limits.reasonRequired ? Math.max(1, limits.reasonMinLength) : 0,
      expireAfter: limits.expireAfterMinutes,
      preview: chosen ? await previewOrNull(ctx, who, { endpoint: chosen.id, group: f.group, minutes: f.minutes }) : null,
    }, status);
  };

  r.get('/requests/new', async (req, res) => {
    need(res, 'requests.file');
    const operation = str(req.query.operation) === 'temporary-access' ? 'temporary-access' : 'elevate-account';
    await showForm(res, { operation, endpoint: str(req.query.endpoint), group: str(req.query.group), minutes: String(defaultMinutes), start: '', reason: '' });
  });

  r.post('/requests/new', async (req: Request, res: Response) => {
    need(res, 'requests.file');
    const f = readForm(req.body);
    const body: Record<string, unknown> = { endpoint: f.endpoint, reason: f.reason, operation: f.operation };
    if (f.group) body.group = f.group;
    if (f.minutes) body.minutes = Number(f.minutes);
    const start = utcParam(f.start);
    if (start) body.startAt = start.toISOString();
    // A start that is no date is said with the other fields' errors, all at once.
    const badStart = f.start !== '' && !start;
    const issues: FieldIssue[] = badStart ? [{ field: 'startAt', message: 'must be a date and time' }] : [];
    let input: FileRequestInput | null = null;
    try {
      input = validate(fileRequestSchema(ctx.config, new Date()), body);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      issues.push(...err.fields.filter((i) => !(badStart && i.field === 'startAt')));
    }
    if (!input || issues.length) return showForm(res, f, toErrors(issues), 400);
    try {
      const filed = await fileRequest(ctx, { ...input, endpoint: input.endpoint ?? '' }, caller(res));
      res.redirect(303, `/requests/${encodeURIComponent(filed._id)}?done=filed`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.fields.length) return showForm(res, f, toErrors(err.fields), 400);
      // One open request per endpoint and group: said on the form, which keeps what was typed.
      if (err.id === 'request.duplicate') return showForm(res, f, {}, err.status, err.message);
      throw err;
    }
  });

  /**
   * Which endpoints to list for this group and duration: {group, minutes, endpoints: [{id, hostname,
   * deniedBy}], note}; `deniedBy` names the rule that would deny the request at once (null: listed).
   */
  r.get('/requests/offer', async (req, res) => {
    need(res, 'requests.file');
    const endpoints = await listEndpoints(ctx);
    const offer = await offerFor(ctx, caller(res), endpoints, offerInput(str(req.query.group), str(req.query.minutes), defaultMinutes));
    res.json({
      group: offer.group, minutes: offer.minutes, note: offer.note,
      endpoints: endpoints.map((e) => ({ id: e.id, hostname: e.hostname, deniedBy: offer.deniedBy.get(e.id) ?? null })),
    });
  });

  /** What the rules would do: {action, rule, approvers, says}; 400 with the error while the values are incomplete. */
  r.get('/requests/preview', async (req, res) => {
    need(res, 'requests.file');
    try {
      res.json(await previewRequest(ctx, caller(res), { endpoint: str(req.query.endpoint), group: str(req.query.group) || undefined, minutes: str(req.query.minutes) }));
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 400) throw err;
      res.status(400).json(err.toJSON());
    }
  });
}
