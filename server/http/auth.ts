import type { NextFunction, Request, Response } from 'express';
import { authenticateAgent } from '../commands/enrollment.ts';
import type { Ctx } from '../context.ts';
import { isDbUnavailable } from '../db/unavailable.ts';
import { apiError } from '../errors.ts';
import { agentActor } from '../store/audit.ts';
import { sameSecret } from '../secrets.ts';
import type { EndpointDoc, Role } from '../store/collections.ts';
import type { WebOptions } from '../web/options.ts';
import { apiPermission, can } from '../web/roles.ts';
import { csrfMatches, loadSession } from '../web/sessions.ts';
import { userActor, userByApiToken } from '../web/users.ts';

declare module 'express-serve-static-core' {
  interface Locals {
    /** Who is calling, as written into audit events. */
    actor: string;
    /** Set on admin API and console routes: what the caller may do. */
    role: Role;
    /** Set on agent routes: the calling endpoint. */
    endpoint: EndpointDoc;
  }
}

function bearer(req: Request): string | null {
  const h = req.get('authorization');
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : null;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The admin API accepts three credentials:
 * - `Authorization: Bearer <config adminToken>`: role admin, actor "admin";
 * - `Authorization: Bearer jitu_…`: a user's personal API token, the user's role;
 * - the console's session cookie, with the session's CSRF token in
 *   `x-csrf-token` on every write.
 * Then the role must allow the call (see web/roles.ts), else 403 auth.forbidden.
 */
export function requireAdmin(ctx: Ctx, opts: WebOptions) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const token = bearer(req);
    if (token && sameSecret(token, ctx.config.adminToken)) {
      res.locals.actor = 'admin';
      res.locals.role = 'admin';
    } else if (token) {
      const user = await userByApiToken(ctx, token);
      if (!user) throw apiError('auth.invalid');
      res.locals.actor = userActor(user);
      res.locals.role = user.role;
    } else {
      const signed = await loadSession(ctx, opts, req);
      if (!signed) throw apiError('auth.required');
      if (!SAFE.has(req.method) && !csrfMatches(signed.session, req.get('x-csrf-token'))) throw apiError('auth.csrf');
      res.locals.actor = userActor(signed.user);
      res.locals.role = signed.user.role;
    }
    if (!can(res.locals.role, apiPermission(req.method, req.path))) throw apiError('auth.forbidden');
    next();
  };
}

/** Agent routes: the endpoint's own credential, checked against its stored hash. */
export function requireAgent(ctx: Ctx) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const token = bearer(req);
    if (!token) throw apiError('auth.required');
    const endpoint = await authenticateAgent(ctx, token);
    if (!endpoint) throw apiError('auth.invalid');
    res.locals.endpoint = endpoint;
    res.locals.actor = agentActor(endpoint._id);
    // Storing the last-seen time (every few minutes) must not fail a poll while the
    // database is down: the poll may carry a revoke held in memory (see AgentHub.push).
    await ctx.presence.heard(endpoint).catch((err: unknown) => {
      if (!isDbUnavailable(err)) throw err;
      ctx.log.warn({ endpointId: endpoint._id, err: (err as Error).message }, 'last-seen time not stored: database unavailable');
    });
    next();
  };
}
