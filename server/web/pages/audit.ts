import type { Request, Response, Router } from 'express';
import type { Filter } from 'mongodb';
import { presentAuditEvent } from '../../presenters/grant.ts';
import { audit } from '../../store/audit.ts';
import { emailKey, type AuditDoc } from '../../store/collections.ts';
import { base, need, str, utcParam, type Web } from '../page.ts';
import type { Ctx } from '../../context.ts';
import { toCsv } from '../csv.ts';
import { render } from '../render.ts';
import { findEndpoints } from '../../store/endpoints.ts';

const PAGE = 200;
const EXPORT_MAX = 50_000;

/** The audit filters as typed: grant, endpoint (id or hostname), user email, actor, event type, time window (UTC). */
interface AuditQuery {
  grant: string;
  endpoint: string;
  email: string;
  actor: string;
  type: string;
  from: string;
  to: string;
}

function readQuery(req: Request): AuditQuery {
  const q = (k: string) => str(req.query[k]).trim();
  return { grant: q('grant'), endpoint: q('endpoint'), email: q('email'), actor: q('actor'), type: q('type'), from: q('from'), to: q('to') };
}

async function toFilter(ctx: Ctx, q: AuditQuery): Promise<Filter<AuditDoc>> {
  const f: Filter<AuditDoc> = {};
  if (q.grant) f.grantId = q.grant;
  if (q.endpoint) {
    // A hostname several endpoints share (records from before hostnames were unique) shows the events of each.
    const found = await findEndpoints(ctx.c, q.endpoint);
    f.endpointId = found.length ? { $in: found.map((e) => e._id) } : q.endpoint;
  }
  if (q.email) {
    // Events of that user's grants, and events that name the email (logins, users), in any letter case.
    const key = emailKey(q.email);
    const ids = await ctx.c.grants.distinct('_id', { emailKey: key });
    f.$or = [{ grantId: { $in: ids } }, { emailKey: key }];
  }
  if (q.actor) f.actor = q.actor;
  if (q.type) f.type = q.type;
  const from = utcParam(q.from);
  const to = utcParam(q.to);
  if (from || to) f.at = { ...(from ? { $gte: from } : {}), ...(to ? { $lte: to } : {}) };
  return f;
}

/** The audit log with filters, and its export as CSV or JSON (auditors and admins). */
export function auditPages(r: Router, { ctx }: Web): void {
  r.get('/audit', async (req, res) => {
    const q = readQuery(req);
    const events = await ctx.c.audit.find(await toFilter(ctx, q)).sort({ seq: -1 }).limit(PAGE).toArray();
    const types = await ctx.c.audit.distinct('type');
    const qs = new URLSearchParams(Object.entries(q).filter(([, v]) => v)).toString();
    render(res, 'audit', {
      ...base(res, 'Audit log', 'audit'),
      q,
      qs,
      types: types.sort(),
      limit: PAGE,
      events: events.map(presentAuditEvent).map((e) => ({ ...e, detailText: JSON.stringify(e.detail) })),
    });
  });

  const exporter = (format: 'csv' | 'json') => async (req: Request, res: Response) => {
    need(res, 'audit.export');
    const q = readQuery(req);
    const events = (await ctx.c.audit.find(await toFilter(ctx, q)).sort({ seq: 1 }).limit(EXPORT_MAX).toArray()).map(presentAuditEvent);
    await audit(ctx.c, { actor: res.locals.actor, type: 'audit.exported', detail: { format, count: events.length, filter: q } });
    const name = `audit-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.${format}`;
    res.attachment(name);
    if (format === 'json') return res.json({ events });
    res.type('text/csv; charset=utf-8').send(toCsv(['at', 'actor', 'type', 'grantId', 'endpointId', 'detail'], events.map((e) => [e.at, e.actor, e.type, e.grantId, e.endpointId, e.detail])));
  };
  r.get('/audit/export.csv', exporter('csv'));
  r.get('/audit/export.json', exporter('json'));
}
