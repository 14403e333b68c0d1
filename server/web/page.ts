/**
 * What console page modules share: the `Web` they are given, the common page
 * model, the role check and form/query readers. Kept apart from console.ts
 * (which imports every page) so pages do not import back from it.
 */
import type { Response } from 'express';
import type { Ctx } from '../context.ts';
import { apiError } from '../errors.ts';
import type { WebOptions } from './options.ts';
import { mayFlags, type Permission, can } from './roles.ts';
import type { Signed } from './sessions.ts';

declare module 'express-serve-static-core' {
  interface Locals {
    /** Set on console pages: the session and its user. */
    signed: Signed;
  }
}

/** What page modules get. */
export interface Web {
  ctx: Ctx;
  opts: WebOptions;
}

/** The common part of every signed-in page. */
export function base(res: Response, title: string, nav: string) {
  const { user, session } = res.locals.signed;
  return { title, nav, user: { email: user.email, role: user.role }, may: mayFlags(user.role), csrf: session.csrfToken };
}

/** Throws 403 auth.forbidden unless the signed-in role has `p`. */
export function need(res: Response, p: Permission): void {
  if (!can(res.locals.role, p)) throw apiError('auth.forbidden');
}

/** Wraps query/body string fields: a missing or repeated field reads as ''. */
export function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** A filter's datetime-local value ("2025-01-31T14:05"), which the pages label UTC; null when empty or invalid. */
export function utcParam(v: string): Date | null {
  const d = v ? new Date(`${v}Z`) : null;
  return d && !Number.isNaN(d.getTime()) ? d : null;
}
