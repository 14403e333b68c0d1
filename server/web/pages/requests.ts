import type { Request, Response, Router } from 'express';
import { approveRequest, denyRequest } from '../../commands/decideRequest.ts';
import { cancelRequest, getRequest, listRequests } from '../../commands/requests.ts';
import { REQUEST_STATES, type RequestState } from '../../domain/requests.ts';
import { ApiError, invalid } from '../../errors.ts';
import { validate } from '../../http/validate.ts';
import { presentAuditEvent } from '../../presenters/grant.ts';
import { approveSchema, denySchema, requestIdSchema } from '../../schemas/requests.ts';
import { base, need, str, utcParam, type Web } from '../page.ts';
import { render } from '../render.ts';
import { caller, requestRows } from '../requestModels.ts';
import { can } from '../roles.ts';
import { formErrors, type FieldErrors } from '../wizardForm.ts';

/** How many requests a list looks at (listRequests' own limit); the filters apply to these. */
const LOOK_AT = 500;
const DONE: Record<string, string> = { approved: 'Approved: the grant is made.', denied: 'Denied: the requester sees your note.', cancelled: 'Cancelled.', filed: 'Request sent.' };

/** What an approve or deny form held, with its errors, to show it again. */
interface Decision {
  form: 'approve' | 'deny';
  minutes: string;
  /** approve: a later start (datetime-local, UTC); empty = at once. */
  start?: string;
  note: string;
  errors: FieldErrors;
}

/**
 * "My requests" (a requester's only list, anyone's with ?mine=true), the Approvals queue (roles
 * that read: every request, pending first by default), one request with its audit events, and
 * cancel / approve / deny. Every action is the API's command (commands/requests.ts,
 * commands/decideRequest.ts): its refusals (403, 409) are the console's error page; a form's field
 * errors are shown on the request's page. Registered before console.ts's "read" gate: each route
 * checks its own permission, so a requester reaches these and nothing else.
 */
export function requestPages(r: Router, { ctx }: Web): void {
  r.get('/requests', async (req, res) => {
    need(res, 'requests.read');
    const who = caller(res);
    const mine = str(req.query.mine) === 'true' || !can(who.role, 'read');
    // The queue opens on what waits; "any" (state=) shows every state.
    const stateParam = req.query.state === undefined ? (mine ? '' : 'pending') : str(req.query.state);
    const state = (REQUEST_STATES as readonly string[]).includes(stateParam) ? (stateParam as RequestState) : undefined;
    const q = { state: state ?? '', requester: str(req.query.requester).trim(), endpoint: str(req.query.endpoint).trim() };
    const list = await listRequests(ctx, who, { ...(state ? { state } : {}), mine: mine ? 'true' : 'false', limit: LOOK_AT });
    const requester = q.requester.toLowerCase();
    const endpoint = q.endpoint.toLowerCase();
    const shown = list.filter(
      (x) =>
        // Read-time expiry may have moved a listed request on.
        (!state || x.state === state) &&
        (!requester || x.requesterKey.includes(requester)) &&
        (!endpoint || x.hostname.toLowerCase().includes(endpoint) || x.endpointId === q.endpoint),
    );
    const title = mine ? 'My requests' : 'Approvals';
    render(res, 'requests', {
      ...base(res, title, mine ? 'myRequests' : 'approvals'),
      refreshSeconds: 30,
      mine,
      q,
      states: REQUEST_STATES,
      hostnames: [...new Set(list.map((x) => x.hostname))].sort(),
      rows: await requestRows(ctx, shown, who),
      lookedAt: list.length === LOOK_AT ? LOOK_AT : 0,
      done: DONE[str(req.query.done)] ?? '',
    });
  });

  const show = async (req: Request, res: Response, id: string, decision: Decision | null = null, status = 200) => {
    const who = caller(res);
    const found = await getRequest(ctx, id, who);
    const [row] = await requestRows(ctx, [found], who);
    const events = await ctx.c.audit.find({ requestId: found._id }).sort({ seq: 1 }).toArray();
    render(res, 'request', {
      ...base(res, `Request by ${found.requesterEmail}`, row!.own && !can(who.role, 'read') ? 'myRequests' : 'approvals'),
      refreshSeconds: found.state === 'pending' ? 30 : 0,
      x: row,
      expiresAt: found.expiresAt,
      events: events.map(presentAuditEvent).map((e) => ({ ...e, detailText: Object.keys(e.detail).length ? JSON.stringify(e.detail) : '' })),
      done: DONE[str(req.query.done)] ?? '',
      approve: decision?.form === 'approve' ? decision : { minutes: String(found.minutes), start: '', note: '', errors: {} },
      deny: decision?.form === 'deny' ? decision : { note: '', errors: {} },
    }, status);
  };

  r.get('/requests/:id', async (req, res) => {
    need(res, 'requests.read');
    const { id } = validate(requestIdSchema, req.params);
    await show(req, res, id);
  });

  r.post('/requests/:id/cancel', async (req, res) => {
    need(res, 'requests.file');
    const { id } = validate(requestIdSchema, req.params);
    await cancelRequest(ctx, id, caller(res));
    res.redirect(303, `/requests/${encodeURIComponent(id)}?done=cancelled`);
  });

  r.post('/requests/:id/approve', async (req, res) => {
    need(res, 'requests.decide');
    const { id } = validate(requestIdSchema, req.params);
    const f = { minutes: str(req.body.minutes).trim(), start: str(req.body.start).trim(), note: str(req.body.note).trim() };
    try {
      const start = utcParam(f.start);
      if (f.start && !start) throw invalid([{ field: 'startAt', message: 'must be a date and time (UTC)' }]);
      const body = { ...(f.minutes ? { minutes: Number(f.minutes) } : {}), ...(start ? { startAt: start.toISOString() } : {}), ...(f.note ? { note: f.note } : {}) };
      await approveRequest(ctx, id, caller(res), validate(approveSchema(ctx.config, new Date()), body));
    } catch (err) {
      if (!(err instanceof ApiError) || !err.fields.length) throw err;
      return show(req, res, id, { form: 'approve', ...f, errors: decisionErrors(err) }, 400);
    }
    res.redirect(303, `/requests/${encodeURIComponent(id)}?done=approved`);
  });

  r.post('/requests/:id/deny', async (req, res) => {
    need(res, 'requests.decide');
    const { id } = validate(requestIdSchema, req.params);
    const f = { minutes: '', note: str(req.body.note).trim() };
    try {
      const { note } = validate(denySchema, { note: f.note });
      await denyRequest(ctx, id, caller(res), note);
    } catch (err) {
      if (!(err instanceof ApiError) || !err.fields.length) throw err;
      return show(req, res, id, { form: 'deny', ...f, errors: decisionErrors(err) }, 400);
    }
    res.redirect(303, `/requests/${encodeURIComponent(id)}?done=denied`);
  });
}

/** An approval's errors on its two fields; what the grant's checks refuse (an overlap, an excluded account) under the button. */
function decisionErrors(err: ApiError): FieldErrors {
  const errors = formErrors(err.fields);
  const out: FieldErrors = {};
  const own: Record<string, string> = { minutes: 'minutes', note: 'note', start: 'start', startAt: 'start' };
  for (const [field, messages] of Object.entries(errors)) (out[own[field] ?? 'decision'] ??= []).push(...messages);
  return out;
}
