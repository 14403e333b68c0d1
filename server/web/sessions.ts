/**
 * Server-side sessions: the cookie carries a random id, the database its
 * sha256, the user and the CSRF token. Expiry is checked on every request.
 */
import type { Request, Response } from 'express';
import type { Ctx } from '../context.ts';
import { isDbUnavailable, within } from '../db/unavailable.ts';
import { hashToken, newToken, sameSecret } from '../secrets.ts';
import type { SessionDoc, UserDoc } from '../store/collections.ts';
import type { WebOptions } from './options.ts';

/** A live session with its user. */
export interface Signed {
  session: SessionDoc;
  user: UserDoc;
}

const COOKIE = 'jit_session';
const SECURE_COOKIE = '__Host-jit_session';
/** Sliding expiry is written at most this often, not on every request. */
const TOUCH_MS = 60_000;
/** How long a session read may take before the session this process last saw stands in for it. */
const READ_BUDGET_MS = 1000;
/** At most this many sessions are remembered for outages (the oldest go first). */
const RECENT_MAX = 10_000;

/**
 * The sessions this process has read lately, by stored id, for while the database
 * cannot be read. Why: a revoke must still be possible then (it is journaled and
 * pushed to the agent; commands/revokeGrant.ts), and the console's revoke needs a
 * signed-in user with the form's CSRF token. Only used when the database is
 * unreachable or slow; a session ended, expired or whose user was disabled while
 * it could be read is forgotten here too.
 */
const recent = new WeakMap<Ctx['c'], Map<string, Signed>>();

function recentOf(ctx: Pick<Ctx, 'c'>): Map<string, Signed> {
  let m = recent.get(ctx.c);
  if (!m) recent.set(ctx.c, (m = new Map()));
  return m;
}

function remember(ctx: Pick<Ctx, 'c'>, signed: Signed): void {
  const m = recentOf(ctx);
  m.delete(signed.session._id);
  m.set(signed.session._id, signed);
  if (m.size > RECENT_MAX) m.delete(m.keys().next().value!);
}

/** Forgets the remembered sessions of a user (disabled, password changed), but `keep`. */
export function forgetSessions(ctx: Pick<Ctx, 'c'>, userId: string, keep?: string): void {
  for (const [id, s] of recentOf(ctx)) if (s.user._id === userId && id !== keep) recentOf(ctx).delete(id);
}

/** The cookie's value; a value that is not valid percent-encoding counts as no cookie. */
export function readCookie(req: Request, name: string): string | null {
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        continue;
      }
    }
  }
  return null;
}

export function isSecure(req: Request, opts: WebOptions): boolean {
  if (opts.cookieSecure !== 'auto') return opts.cookieSecure === 'always';
  return req.secure || req.get('x-forwarded-proto')?.split(',')[0]?.trim() === 'https';
}

/**
 * `sameSite` Lax only for what must come back on a top-level navigation from another site (the
 * OpenID Connect callback: web/oidc.ts); everything else is Strict.
 */
export function setCookie(req: Request, res: Response, opts: WebOptions, name: string, value: string, maxAgeSeconds: number, sameSite: 'Strict' | 'Lax' = 'Strict'): void {
  const secure = isSecure(req, opts);
  const n = secure && name === COOKIE ? SECURE_COOKIE : name;
  const flags = ['Path=/', 'HttpOnly', `SameSite=${sameSite}`, `Max-Age=${maxAgeSeconds}`, ...(secure ? ['Secure'] : [])];
  res.append('Set-Cookie', `${n}=${encodeURIComponent(value)}; ${flags.join('; ')}`);
}

export async function startSession(ctx: Ctx, opts: WebOptions, req: Request, res: Response, user: UserDoc): Promise<void> {
  const id = newToken('jits');
  const now = new Date();
  await ctx.c.sessions.deleteMany({ expiresAt: { $lt: now } });
  await ctx.c.sessions.insertOne({ _id: hashToken(id), userId: user._id, csrfToken: newToken('csrf'), createdAt: now, expiresAt: expiry(opts, now, now) });
  setCookie(req, res, opts, COOKIE, id, opts.sessionMaxHours * 3600);
}

export async function endSession(ctx: Ctx, opts: WebOptions, req: Request, res: Response): Promise<void> {
  const id = sessionCookie(req);
  if (id) recentOf(ctx).delete(hashToken(id));
  if (id) await ctx.c.sessions.deleteOne({ _id: hashToken(id) });
  setCookie(req, res, opts, COOKIE, '', 0);
}

function sessionCookie(req: Request): string | null {
  return readCookie(req, SECURE_COOKIE) ?? readCookie(req, COOKIE);
}

function expiry(opts: WebOptions, createdAt: Date, now: Date): Date {
  return new Date(Math.min(createdAt.getTime() + opts.sessionMaxHours * 3_600_000, now.getTime() + opts.sessionIdleMinutes * 60_000));
}

/**
 * The request's session and user, or null (no cookie, expired, unknown, user disabled).
 * While the database cannot be read (unreachable, or no answer within READ_BUDGET_MS)
 * the session as this process last read it stands in, if it has not expired; without
 * one the read is waited for, and its error thrown.
 */
export async function loadSession(ctx: Ctx, opts: WebOptions, req: Request): Promise<Signed | null> {
  const id = sessionCookie(req);
  if (!id) return null;
  const key = hashToken(id);
  const read = readSession(ctx, opts, key);
  try {
    const signed = await (recentOf(ctx).has(key) ? within(read, READ_BUDGET_MS, 'session') : read);
    if (signed) remember(ctx, signed);
    else recentOf(ctx).delete(key);
    return signed;
  } catch (err) {
    const seen = recentOf(ctx).get(key);
    if (!isDbUnavailable(err) || !seen || seen.session.expiresAt <= new Date()) throw err;
    ctx.log.warn({ user: seen.user.email, err: (err as Error).message }, 'database unavailable: the session as last read stands in');
    return seen;
  }
}

async function readSession(ctx: Ctx, opts: WebOptions, key: string): Promise<Signed | null> {
  const session = await ctx.c.sessions.findOne({ _id: key });
  const now = new Date();
  if (!session) return null;
  if (session.expiresAt <= now) {
    await ctx.c.sessions.deleteOne({ _id: session._id });
    return null;
  }
  const user = await ctx.c.users.findOne({ _id: session.userId, disabled: false });
  if (!user) return null;
  const next = expiry(opts, session.createdAt, now);
  if (next.getTime() - session.expiresAt.getTime() > TOUCH_MS) {
    await ctx.c.sessions.updateOne({ _id: session._id }, { $set: { expiresAt: next } });
    session.expiresAt = next;
  }
  return { session, user };
}

export function csrfMatches(session: SessionDoc, token: unknown): boolean {
  return typeof token === 'string' && token.length > 0 && sameSecret(token, session.csrfToken);
}
