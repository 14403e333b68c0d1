import type { Request, Response, Router } from 'express';
import Handlebars from 'handlebars';
import { ApiError } from '../../errors.ts';
import { newToken, sameSecret } from '../../secrets.ts';
import { audit } from '../../store/audit.ts';
import { str, type Web } from '../page.ts';
import { render } from '../render.ts';
import { endSession, readCookie, setCookie, startSession } from '../sessions.ts';
import { login, userActor } from '../users.ts';
import { finishSso, SsoRefused, startSso } from '../oidc.ts';
import { ssoUser } from '../ssoUsers.ts';

/** Before a session exists, the login form's CSRF token is double-submitted: a cookie and a field. */
const LOGIN_CSRF = 'jit_login_csrf';

/** Only paths on this site, never "//evil.example". */
const safeNext = (v: string) => (/^\/(?![/\\])/.test(v) ? v : '/');

export function loginPages(r: Router, { ctx, opts }: Web): void {
  const form = (req: Request, res: Response, extra: object, status = 200) => {
    // Reused while it lasts, so a second tab or a stray request cannot invalidate an open form.
    const csrf = readCookie(req, LOGIN_CSRF) || newToken('csrf');
    setCookie(req, res, opts, LOGIN_CSRF, csrf, 3600);
    const next = safeNext(str(req.query.next) || str(req.body?.next));
    const sso = ctx.config.oidc ? { label: ctx.config.oidc.label, href: `/login/oidc?next=${encodeURIComponent(next)}` } : null;
    render(res, 'login', { title: 'Sign in', csrf, next, sso, ...extra }, status);
  };

  r.get('/login', (req, res) => form(req, res, {}));

  const o = ctx.config.oidc;
  if (o) {
    r.get('/login/oidc', async (req, res) => startSso(ctx, o, opts, req, res, safeNext(str(req.query.next))));

    r.get('/login/oidc/callback', async (req, res) => {
      try {
        const { identity, next } = await finishSso(ctx, o, opts, req, res);
        const user = await ssoUser(ctx, identity);
        await startSession(ctx, opts, req, res, user);
        await audit(ctx.c, { actor: userActor(user), type: 'auth.login', detail: { email: user.email, via: 'sso', subject: identity.subject } });
        // A page that moves on by itself, not a redirect: see web/oidc.ts.
        const to = Handlebars.escapeExpression(safeNext(next));
        res.type('html').send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${to}"><title>Signed in · JIT access</title></head><body><p>Signed in. <a href="${to}">Continue</a></p></body></html>`);
      } catch (err) {
        if (!(err instanceof SsoRefused)) throw err;
        await audit(ctx.c, { actor: 'system', type: 'auth.sso-refused', detail: { reason: err.message } });
        form(req, res, { error: `Sign-in refused: ${err.message}` }, 403);
      }
    });
  }

  r.post('/login', async (req, res) => {
    const body = req.body ?? {};
    const cookie = readCookie(req, LOGIN_CSRF);
    const email = str(body.email);
    if (!cookie || !sameSecret(cookie, str(body._csrf))) return form(req, res, { email, error: 'The form expired: please sign in again.' }, 403);
    try {
      const user = await login(ctx, opts, email, str(body.password));
      await startSession(ctx, opts, req, res, user);
      setCookie(req, res, opts, LOGIN_CSRF, '', 0);
      res.redirect(303, safeNext(str(body.next)));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      form(req, res, { email, error: err.message }, err.status);
    }
  });
}

export function logoutPage(r: Router, { ctx, opts }: Web): void {
  r.post('/logout', async (req, res) => {
    await audit(ctx.c, { actor: userActor(res.locals.signed.user), type: 'auth.logout', detail: {} });
    await endSession(ctx, opts, req, res);
    res.redirect(303, '/login');
  });
}
