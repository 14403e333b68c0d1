/**
 * The admin console: server-rendered pages under `/`, form posts with a CSRF
 * token, a session cookie. Requests for /api, /agent, /healthz and /livez pass through.
 */
import express, { Router, type ErrorRequestHandler, type NextFunction, type Request, type Response } from 'express';
import path from 'node:path';
import type { Ctx } from '../context.ts';
import { can } from './roles.ts';
import { apiError, type ApiError } from '../errors.ts';
import { clientGone, logAfterDeadline, logFailure, prepareErrorAnswer, toApiError } from '../http/clientErrors.ts';
import type { WebOptions } from './options.ts';
import { base, type Web } from './page.ts';
import { auditPages } from './pages/audit.ts';
import { dashboardPage } from './pages/dashboard.ts';
import { endpointPages } from './pages/endpoints.ts';
import { grantPages } from './pages/grants.ts';
import { loginPages, logoutPage } from './pages/login.ts';
import { requestNewPages } from './pages/requestNew.ts';
import { requestRulesPages } from './pages/requestRules.ts';
import { requestPages } from './pages/requests.ts';
import { settingsPages } from './pages/settings.ts';
import { userPages } from './pages/users.ts';
import { wizardPages } from './pages/wizard.ts';
import { render } from './render.ts';
import { csrfMatches, loadSession } from './sessions.ts';

const PASS_THROUGH = /^\/(api|agent)\/|^\/(healthz|livez)$/;

/** Whether a path is the console's (an HTML page) rather than the API's or an agent's. */
export const isConsolePath = (p: string) => !PASS_THROUGH.test(p);

export function consoleRoutes(ctx: Ctx, opts: WebOptions): Router {
  const w: Web = { ctx, opts };
  const r = Router();
  r.use((req, _res, next) => (PASS_THROUGH.test(req.path) ? next('router') : next()));
  r.use((_req, res, next) => {
    res.set({
      'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
      'X-Frame-Options': 'DENY',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    });
    next();
  });
  r.use('/assets', express.static(path.join(import.meta.dirname, 'public'), { maxAge: '1h', index: false }));
  r.get('/favicon.ico', (_req, res) => {
    res.status(204).end();
  });
  r.use(express.urlencoded({ extended: false, limit: '32kb', parameterLimit: 100 }));
  loginPages(r, w);
  r.use(async (req, res, next) => {
    const signed = await loadSession(ctx, opts, req);
    if (!signed) {
      if (req.method === 'GET') return res.redirect(303, `/login?next=${encodeURIComponent(req.originalUrl)}`);
      throw apiError('auth.required');
    }
    if (req.method === 'POST' && !csrfMatches(signed.session, req.body?._csrf)) throw apiError('auth.csrf');
    res.locals.signed = signed;
    res.locals.actor = `user:${signed.user.email}`;
    res.locals.role = signed.user.role;
    next();
  });
  logoutPage(r, w);
  // The request pages check their own permissions (web/roles.ts): the only ones a role without
  // 'read' (a requester) reaches, and for them only their own requests (commands/requests.ts).
  requestNewPages(r, w);
  requestPages(r, w);
  r.use((req, res, next) => {
    if (can(res.locals.role, 'read')) return next();
    if (req.method === 'GET' && req.path === '/' && can(res.locals.role, 'requests.file')) return res.redirect(303, '/requests?mine=true');
    throw apiError('auth.forbidden', `Your role (${res.locals.role}) may only ask for access and follow your own requests: Request access, My requests.`);
  });
  dashboardPage(r, w);
  wizardPages(r, w);
  grantPages(r, w);
  endpointPages(r, w);
  settingsPages(r, w);
  auditPages(r, w);
  userPages(r, w);
  requestRulesPages(r, w);
  r.use(consoleErrors(ctx));
  return r;
}

/** The console's error page for `e` (a database that cannot be reached says so, with Retry-After). */
export function sendConsoleError(ctx: Ctx, res: Response, e: ApiError): void {
  prepareErrorAnswer(ctx, res, e);
  const signed = res.locals.signed;
  const error = { id: e.id, message: e.message, status: e.status, dbUnavailable: e.id === 'db.unavailable', retryAfterSeconds: ctx.config.retryAfterSeconds };
  const title = error.dbUnavailable ? 'Database unreachable' : 'Error';
  render(res, 'error', { title, ...(signed ? base(res, title, '') : {}), error }, e.status);
}

function consoleErrors(ctx: Ctx): ErrorRequestHandler {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toApiError(err);
    // The deadline answered already (http/deadline.ts): nothing more is sent (a bug is still logged as one).
    if (res.locals.timedOut) return void logAfterDeadline(ctx.log, req, err, e);
    logFailure(ctx.log, req, err, e);
    if (clientGone(req, e)) return;
    if (res.headersSent) return void req.socket.destroy();
    if (e.id === 'auth.required' && req.method === 'GET') return res.redirect(303, '/login');
    sendConsoleError(ctx, res, e);
  };
}
