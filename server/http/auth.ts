import type { NextFunction, Request, Response } from 'express';
import { authenticateAgent } from '../commands/enrollment.ts';
import type { Ctx } from '../context.ts';
import { apiError } from '../errors.ts';
import { sameSecret } from '../secrets.ts';
import type { EndpointDoc } from '../store/collections.ts';

declare module 'express-serve-static-core' {
  interface Locals {
    /** Who is calling, as written into audit events. */
    actor: string;
    /** Set on agent routes: the calling endpoint. */
    endpoint: EndpointDoc;
  }
}

function bearer(req: Request): string | null {
  const h = req.get('authorization');
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : null;
}

/** The admin API: a token from config until the console adds logins. */
export function requireAdmin(ctx: Ctx) {
  return (req: Request, res: Response, next: NextFunction) => {
    const token = bearer(req);
    if (!token) throw apiError('auth.required');
    if (!sameSecret(token, ctx.config.adminToken)) throw apiError('auth.invalid');
    res.locals.actor = 'admin';
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
    res.locals.actor = `agent:${endpoint._id}`;
    next();
  };
}
