import type { Router } from 'express';
import { z } from 'zod';
import { resendCredentials } from '../../commands/resendCredentials.ts';
import { requestRevoke } from '../../commands/revokeGrant.ts';
import { GRANT_STATES, hasAccount, isFinal, type GrantState } from '../../domain/lifecycle.ts';
import { apiError } from '../../errors.ts';
import { validate } from '../../http/validate.ts';
import { journaledRevokeMessage, presentAuditEvent, presentGrantWithTimeline } from '../../presenters/grant.ts';
import { grantIdSchema } from '../../schemas/grants.ts';
import { timeline } from '../../store/audit.ts';
import { grantFilter } from '../../store/grants.ts';
import { base, need, str, utcParam, type Web } from '../page.ts';
import { grantRow } from '../models.ts';
import { render } from '../render.ts';

const ACTIONS = {
  revoke: { title: 'Revoke now', says: 'The user is logged off now and the account deleted with its home folder. This cannot be undone.', done: 'revoked' },
  resend: { title: 'Resend credentials', says: 'The endpoint sets a new random password (the old one stops working) and emails it again.', done: 'resent' },
} as const;
type Action = keyof typeof ACTIONS;
const ActionParams = z.strictObject({ id: z.string().min(1).max(100), action: z.enum(['revoke', 'resend']) });

/** The grants list with filters, one grant with its live timeline, and its actions behind a confirmation. */
export function grantPages(r: Router, { ctx }: Web): void {
  r.get('/grants', async (req, res) => {
    const q = { state: str(req.query.state), endpoint: str(req.query.endpoint).trim(), email: str(req.query.email).trim(), from: str(req.query.from), to: str(req.query.to) };
    const state = (GRANT_STATES as readonly string[]).includes(q.state) ? (q.state as GrantState) : undefined;
    const from = utcParam(q.from);
    const to = utcParam(q.to);
    const filter = grantFilter({ ...(state ? { state } : {}), email: q.email, endpoint: q.endpoint, ...(from ? { from } : {}), ...(to ? { to } : {}) });
    const grants = await ctx.c.grants.find(filter).sort({ createdAt: -1 }).limit(200).toArray();
    const hostnames = await ctx.c.endpoints.distinct('hostname');
    render(res, 'grants', { ...base(res, 'Grants', 'grants'), q, states: GRANT_STATES, hostnames, grants: grants.map((g) => grantRow(g)) });
  });

  const load = async (params: unknown) => {
    const { id } = validate(grantIdSchema, params);
    const g = await ctx.c.grants.findOne({ _id: id });
    if (!g) throw apiError('grant.not_found');
    return g;
  };

  r.get('/grants/:id', async (req, res) => {
    const g = await load(req.params);
    const events = await timeline(ctx.c, g._id);
    render(res, 'grant', {
      ...base(res, `Grant for ${g.email}`, 'grants'),
      refreshSeconds: isFinal(g.state) ? 0 : 5,
      g: grantRow(g),
      created: req.query.created === '1',
      done: str(req.query.done),
      events: events.map(presentAuditEvent).map((e) => ({ ...e, detailText: Object.keys(e.detail).length ? JSON.stringify(e.detail) : '' })),
      revocable: !isFinal(g.state),
      resendable: hasAccount(g.state),
    });
  });

  /** What the page script polls every 2 s while the grant is live. */
  r.get('/grants/:id/timeline.json', async (req, res) => {
    const g = await load(req.params);
    res.json(presentGrantWithTimeline(g, await timeline(ctx.c, g._id)));
  });

  r.get('/grants/:id/:action', async (req, res) => {
    const { action } = validate(ActionParams, req.params);
    need(res, 'grants.write');
    const g = await load({ id: req.params.id });
    render(res, 'confirm', { ...base(res, ACTIONS[action].title, 'grants'), g: grantRow(g), action, a: ACTIONS[action] });
  });

  /**
   * A revoke goes through the API's `requestRevoke`: with the database unreachable it can still
   * be journaled and pushed to the agent, and the page then says what was done (202), as the
   * grant's own page needs the database.
   */
  r.post('/grants/:id/:action', async (req, res) => {
    const { id, action } = validate(ActionParams, req.params);
    need(res, 'grants.write');
    const a = ACTIONS[action as Action];
    if (action === 'revoke') {
      const out = await requestRevoke(ctx, id, res.locals.actor, { deadlineAt: res.locals.deadlineAt, answered: () => !!res.locals.timedOut });
      if (out.journaled) {
        const model = { grantId: id, agentConnected: out.agentConnected, requestedAt: out.requestedAt, message: journaledRevokeMessage(out.agentConnected) };
        return render(res, 'revokeJournaled', { ...base(res, 'Revoke accepted', 'grants'), ...model }, 202);
      }
    } else await resendCredentials(ctx, id, res.locals.actor);
    res.redirect(303, `/grants/${id}?done=${a.done}`);
  });
}
