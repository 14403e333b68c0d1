import type { Request, Response, Router } from 'express';
import { GROUPS_BY_OS, OS_LABEL, osHonours } from '../../../protocol/groups.ts';
import { fileRequest, ownAccount } from '../../commands/requests.ts';
import { listEndpoints } from '../../commands/listEndpoints.ts';
import { ApiError, type FieldIssue } from '../../errors.ts';
import { validate } from '../../http/validate.ts';
import { fileRequestSchema, type FileRequestInput } from '../../schemas/requests.ts';
import { base, need, str, utcParam, type Web } from '../page.ts';
import { render } from '../render.ts';
import { caller } from '../requestModels.ts';
import { previewOrNull, previewRequest } from '../requestPreview.ts';
import { formErrors, groupReason, type FieldErrors } from '../wizardForm.ts';

/** The form's fields as typed, kept to show them again. */
interface RequestForm {
  endpoint: string;
  group: string;
  minutes: string;
  /** datetime-local, UTC; empty = as soon as approved. */
  start: string;
  reason: string;
}

const readForm = (body: Record<string, unknown>): RequestForm => ({
  endpoint: str(body.endpoint),
  group: str(body.group),
  minutes: str(body.minutes).trim(),
  start: str(body.start),
  reason: str(body.reason),
});

/** The API's fields on the form's (the operation and the account are not chosen here: the endpoint decides them). */
const FIELD_OF: Record<string, string> = { endAt: 'startAt', account: 'endpoint', operation: 'endpoint' };
const toErrors = (issues: FieldIssue[]): FieldErrors => formErrors(issues.map((i) => ({ ...i, field: FIELD_OF[i.field] ?? i.field })));

/**
 * "Request access": a person asks for their own account to be elevated on one endpoint. The form
 * goes through the API's schema (fileRequestSchema) and command (fileRequest), so it refuses what
 * the API refuses, per field; a small script (public/requests.js) asks GET /requests/preview what
 * the rules would do with the values as they change.
 */
export function requestNewPages(r: Router, { ctx }: Web): void {
  const limits = ctx.config.requests;

  const showForm = async (res: Response, f: RequestForm, errors: FieldErrors = {}, status = 200, formError = '') => {
    const endpoints = await listEndpoints(ctx);
    const chosen = endpoints.find((e) => e.id === f.endpoint || e.hostname.toLowerCase() === f.endpoint.toLowerCase()) ?? null;
    const who = caller(res);
    render(res, 'requestNew', {
      ...base(res, 'Request access', 'requestNew'),
      f,
      errors,
      errorCount: Object.keys(errors).length,
      formError,
      endpoints: endpoints.map((e) => ({
        id: e.id,
        hostname: e.hostname,
        osLabel: OS_LABEL[e.os],
        os: e.os,
        account: ownAccount(who.email, e.os),
        selected: e.id === chosen?.id,
        // What the approval's grant would refuse anyway: say so before anyone waits for it.
        cannot: e.capabilities.includes('elevate-account') ? '' : 'its agent cannot elevate accounts yet',
      })),
      account: chosen ? ownAccount(who.email, chosen.os) : '',
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
    await showForm(res, { endpoint: str(req.query.endpoint), group: str(req.query.group), minutes: String(Math.min(60, limits.maxMinutes)), start: '', reason: '' });
  });

  r.post('/requests/new', async (req: Request, res: Response) => {
    need(res, 'requests.file');
    const f = readForm(req.body);
    const body: Record<string, unknown> = { endpoint: f.endpoint, reason: f.reason, operation: 'elevate-account' };
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
      const filed = await fileRequest(ctx, input, caller(res));
      res.redirect(303, `/requests/${encodeURIComponent(filed._id)}?done=filed`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.fields.length) return showForm(res, f, toErrors(err.fields), 400);
      // One open request per endpoint and group: said on the form, which keeps what was typed.
      if (err.id === 'request.duplicate') return showForm(res, f, {}, err.status, err.message);
      throw err;
    }
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
