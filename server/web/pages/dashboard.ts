import type { Router } from 'express';
import { LIVE_STATES } from '../../domain/lifecycle.ts';
import { base, type Web } from '../page.ts';
import { listEndpoints } from '../../commands/listEndpoints.ts';
import { grantRow } from '../models.ts';
import { render } from '../render.ts';
import { can } from '../roles.ts';

const OFFLINE_LOOKBACK_MS = 24 * 3_600_000;

/** A guard event in words: who was found in which group and what was done, or the sudoers change. */
function guardFinding(type: string, detail: string): string {
  if (type === 'guard.sudoers-changed') return 'the sudoers files changed during the window (not undone: review them)';
  try {
    const f = JSON.parse(detail) as { account?: string; group?: string; action?: string };
    return `rogue admin ${f.account ?? '?'} in ${f.group ?? '?'}: ${f.action ?? 'found'}`;
  } catch {
    return `rogue admin: ${detail}`;
  }
}

/** Active and upcoming grants with countdowns, grants in trouble, endpoints online or not; for deciders, the requests waiting. */
export function dashboardPage(r: Router, { ctx }: Web): void {
  r.get('/', async (_req, res) => {
    const now = new Date();
    const live = await ctx.c.grants.find({ state: { $in: [...LIVE_STATES] } }).sort({ startAt: 1 }).limit(500).toArray();
    const offline = await ctx.c.audit.find({ type: 'endpoint.offline-at-due-step', at: { $gt: new Date(now.getTime() - OFFLINE_LOOKBACK_MS) } }).toArray();
    const offlineSteps = new Map(offline.map((e) => [e.grantId, String(e.detail.step ?? '')]));
    const failedMail = await ctx.c.grants.find({ 'delivery.status': 'failed', endAt: { $gt: now } }).limit(100).toArray();
    const trouble = new Map<string, { grant: ReturnType<typeof grantRow>; why: string[] }>();
    const flag = (g: (typeof live)[number], why: string) => {
      const t = trouble.get(g._id) ?? { grant: grantRow(g, now), why: [] };
      t.why.push(why);
      trouble.set(g._id, t);
    };
    for (const g of live) {
      if (g.state === 'revocation-failed') flag(g, `revocation failed: ${g.reason ?? 'the endpoint has not confirmed deletion'}`);
      if (offlineSteps.has(g._id)) flag(g, `endpoint was offline when the ${offlineSteps.get(g._id)} step was due`);
    }
    for (const g of failedMail) flag(g, `credentials email failed: ${g.delivery.lastError ?? 'unknown error'}`);
    // The rogue-admin guard's findings of the last day, on their grants (ended ones too).
    const guard = await ctx.c.audit.find({ type: { $in: ['guard.rogue-admin', 'guard.sudoers-changed'] }, at: { $gt: new Date(now.getTime() - OFFLINE_LOOKBACK_MS) } }).limit(200).toArray();
    const guarded = new Map((await ctx.c.grants.find({ _id: { $in: [...new Set(guard.flatMap((e) => (e.grantId ? [e.grantId] : [])))] } }).toArray()).map((g) => [g._id, g]));
    for (const e of guard) {
      const g = e.grantId ? guarded.get(e.grantId) : undefined;
      if (g) flag(g, guardFinding(e.type, String(e.detail.detail ?? '')));
    }
    const rows = live.map((g) => grantRow(g, now));
    const endpoints = await listEndpoints(ctx);
    // Requests waiting for an approver (not those past their expiry the sweep has yet to move).
    const pendingRequests = can(res.locals.role, 'requests.decide') ? await ctx.c.requests.countDocuments({ state: 'pending', expiresAt: { $gt: now } }) : null;
    render(res, 'dashboard', {
      ...base(res, 'Dashboard', 'dashboard'),
      refreshSeconds: 30,
      active: rows.filter((g) => g.state === 'enabled'),
      upcoming: rows.filter((g) => g.state === 'requested' || g.state === 'provisioned'),
      trouble: [...trouble.values()],
      endpoints,
      online: endpoints.filter((e) => e.online).length,
      pendingRequests,
    });
  });
}
