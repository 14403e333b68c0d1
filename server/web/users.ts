/**
 * Console users: creation, roles, login with a lock after repeated failures,
 * and personal API tokens. Passwords are hashed with argon2id.
 */
import { randomUUID } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import type { Ctx } from '../context.ts';
import { ApiError, apiError, invalid } from '../errors.ts';
import { hashToken, newToken } from '../secrets.ts';
import { audit } from '../store/audit.ts';
import type { Role, UserDoc } from '../store/collections.ts';
import type { WebOptions } from './options.ts';

export const MIN_PASSWORD = 12;
/** Verified against when the email is unknown, so both cases cost the same. */
const DUMMY_HASH = hash('not-a-real-password-0000');

export const userActor = (u: Pick<UserDoc, 'email'>) => `user:${u.email}`;

export function checkPassword(password: string, field = 'password'): void {
  if (password.length < MIN_PASSWORD) throw invalid([{ field, message: `must be at least ${MIN_PASSWORD} characters` }]);
  if (password.length > 256) throw invalid([{ field, message: 'must be at most 256 characters' }]);
}

export async function createUser(ctx: Pick<Ctx, 'c'>, input: { email: string; role: Role; password: string }, actor: string): Promise<UserDoc> {
  const email = input.email.trim().toLowerCase();
  checkPassword(input.password);
  if (await ctx.c.users.findOne({ email })) throw apiError('user.exists');
  const now = new Date();
  const user: UserDoc = { _id: randomUUID(), email, role: input.role, passwordHash: await hash(input.password), disabled: false, createdBy: actor, createdAt: now, updatedAt: now };
  await ctx.c.users.insertOne(user);
  await audit(ctx.c, { actor, type: 'user.created', detail: { email, role: input.role } });
  return user;
}

export async function updateUser(ctx: Ctx, userId: string, change: { role: Role; disabled: boolean }, actor: string): Promise<UserDoc> {
  const u = await ctx.c.users.findOneAndUpdate({ _id: userId }, { $set: { ...change, updatedAt: new Date() } }, { returnDocument: 'after' });
  if (!u) throw apiError('user.not_found');
  if (change.disabled) await ctx.c.sessions.deleteMany({ userId });
  await audit(ctx.c, { actor, type: 'user.updated', detail: { email: u.email, ...change } });
  return u;
}

export async function changePassword(ctx: Ctx, user: UserDoc, password: string, actor: string): Promise<void> {
  checkPassword(password);
  await ctx.c.users.updateOne({ _id: user._id }, { $set: { passwordHash: await hash(password), updatedAt: new Date() } });
  await audit(ctx.c, { actor, type: 'user.password-changed', detail: { email: user.email } });
}

/** A new personal API token (replacing any earlier one); returned once, stored hashed. */
export async function createApiToken(ctx: Ctx, user: UserDoc): Promise<string> {
  const token = newToken('jitu');
  await ctx.c.users.updateOne({ _id: user._id }, { $set: { apiTokenHash: hashToken(token), updatedAt: new Date() } });
  await audit(ctx.c, { actor: userActor(user), type: 'user.api-token-created', detail: { email: user.email } });
  return token;
}

export async function userByApiToken(ctx: Ctx, token: string): Promise<UserDoc | null> {
  if (!token.startsWith('jitu_')) return null;
  return ctx.c.users.findOne({ apiTokenHash: hashToken(token), disabled: false });
}

/**
 * Checks a login. Failures count per email whether the account exists or not;
 * `maxFailedLogins` in a row lock the email for `lockMinutes` (a correct
 * password is refused while locked). Every answer takes at least `loginMinMs`.
 */
export async function login(ctx: Ctx, opts: WebOptions, emailIn: string, password: string): Promise<UserDoc> {
  const started = Date.now();
  try {
    return await checkLogin(ctx, opts, emailIn.trim().toLowerCase(), password);
  } finally {
    const wait = opts.loginMinMs - (Date.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

async function checkLogin(ctx: Ctx, opts: WebOptions, email: string, password: string): Promise<UserDoc> {
  const now = new Date();
  const throttle = await ctx.c.loginThrottle.findOne({ _id: email });
  if (throttle?.lockedUntil && throttle.lockedUntil > now) {
    await audit(ctx.c, { actor: 'system', type: 'auth.login-refused-locked', detail: { email } });
    throw new ApiError('auth.locked', [], `Too many failed logins: this account is locked until ${throttle.lockedUntil.toISOString().slice(11, 16)} UTC.`);
  }
  const user = await ctx.c.users.findOne({ email });
  const ok = await verify(user?.passwordHash ?? (await DUMMY_HASH), password).catch(() => false);
  if (!user || !ok || user.disabled) {
    const failures = (throttle?.lockedUntil ? 0 : (throttle?.failures ?? 0)) + 1;
    const lockedUntil = failures >= opts.maxFailedLogins ? new Date(now.getTime() + opts.lockMinutes * 60_000) : null;
    await ctx.c.loginThrottle.updateOne({ _id: email }, { $set: { failures: lockedUntil ? 0 : failures, lockedUntil, updatedAt: now } }, { upsert: true });
    await audit(ctx.c, { actor: 'system', type: lockedUntil ? 'auth.locked' : 'auth.login-failed', detail: { email, failures } });
    throw lockedUntil ? apiError('auth.locked') : apiError('auth.invalid', 'Wrong email or password.');
  }
  await ctx.c.loginThrottle.deleteOne({ _id: email });
  await audit(ctx.c, { actor: userActor(user), type: 'auth.login', detail: { email } });
  return user;
}
