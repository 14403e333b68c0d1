/**
 * Console users: creation, roles, login with a lock after repeated failures,
 * and personal API tokens. Passwords are hashed with argon2id.
 */
import { randomUUID } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import type { Ctx } from '../context.ts';
import { SerialQueues } from '../db/serialQueues.ts';
import { ApiError, apiError, invalid } from '../errors.ts';
import { hashToken, newToken } from '../secrets.ts';
import { audit } from '../store/audit.ts';
import type { Role, UserDoc } from '../store/collections.ts';
import type { WebOptions } from './options.ts';
import { forgetSessions } from './sessions.ts';

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
  try {
    await ctx.c.users.insertOne(user);
  } catch (err) {
    // Two creations racing past the check above: the unique index on email stops the second.
    if (isDuplicateKey(err)) throw apiError('user.exists');
    throw err;
  }
  await audit(ctx.c, { actor, type: 'user.created', detail: { email, role: input.role } });
  return user;
}

const isDuplicateKey = (err: unknown) => (err as { code?: unknown }).code === 11000;

export async function updateUser(ctx: Ctx, userId: string, change: { role: Role; disabled: boolean }, actor: string): Promise<UserDoc> {
  const u = await ctx.c.users.findOneAndUpdate({ _id: userId }, { $set: { ...change, updatedAt: new Date() } }, { returnDocument: 'after' });
  if (!u) throw apiError('user.not_found');
  if (change.disabled) forgetSessions(ctx, userId);
  if (change.disabled) await ctx.c.sessions.deleteMany({ userId });
  await audit(ctx.c, { actor, type: 'user.updated', detail: { email: u.email, ...change } });
  return u;
}

/**
 * Sets a new password and signs the user out everywhere else: every other
 * session ends and the personal API token is revoked (whoever knew the old
 * password may have made either). `keepSessionId` (the stored id) stays signed in.
 */
export async function changePassword(ctx: Ctx, user: UserDoc, password: string, actor: string, keepSessionId: string): Promise<void> {
  checkPassword(password);
  await ctx.c.users.updateOne({ _id: user._id }, { $set: { passwordHash: await hash(password), updatedAt: new Date() }, $unset: { apiTokenHash: '' } });
  forgetSessions(ctx, user._id, keepSessionId);
  const ended = await ctx.c.sessions.deleteMany({ userId: user._id, _id: { $ne: keepSessionId } });
  await audit(ctx.c, { actor, type: 'user.password-changed', detail: { email: user.email, sessionsEnded: ended.deletedCount, apiTokenRevoked: Boolean(user.apiTokenHash) } });
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
    return await checkThrottled(ctx, opts, emailIn.trim().toLowerCase(), password, { via: 'login', actor: 'system' });
  } finally {
    const wait = opts.loginMinMs - (Date.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

/**
 * Checks a signed-in user's current password (before a password change) through
 * the same per-email queue, counter and lock as a login. Why: without it the form
 * is an unthrottled oracle for whoever holds a stolen session. A wrong password
 * throws 401 auth.invalid, the lock 429 auth.locked.
 */
export async function checkCurrentPassword(ctx: Ctx, opts: WebOptions, user: UserDoc, password: string): Promise<void> {
  await checkThrottled(ctx, opts, user.email, password, { via: 'password-change', actor: userActor(user) });
}

/**
 * One check per email at a time, in this process. Why: on FerretDB 1.24.2
 * an update is a read then a write, so parallel guesses each read the same count
 * (measured: 50 parallel `$inc` by `_id` on one document added 4, and parallel
 * upserts of one `_id` fail with E11000); 20 parallel wrong passwords stored
 * `failures: 2` and never locked. The server is one process per database (see
 * db/serialQueues.ts), so a per-email queue makes check → verify → count atomic,
 * and the lock holds from the fifth failure on however many guesses arrive at once.
 */
const loginQueues = new WeakMap<Ctx['c'], SerialQueues>();

interface CheckAs {
  /** What asked, in the audit events' detail. */
  via: 'login' | 'password-change';
  /** Who the audit events name: "system" for a login, the user for a signed-in check. */
  actor: string;
}

function checkThrottled(ctx: Ctx, opts: WebOptions, email: string, password: string, as: CheckAs): Promise<UserDoc> {
  let queues = loginQueues.get(ctx.c);
  if (!queues) loginQueues.set(ctx.c, (queues = new SerialQueues()));
  return queues.run(email, () => checkNow(ctx, opts, email, password, as));
}

/**
 * The check itself. A refusal while locked is audited once per lock
 * (`auth.login-refused-locked`), not per attempt: a flood of attempts on a locked
 * email writes nothing. A throttle row is deleted when read once it means
 * nothing any more: its lock has run out, or it holds no lock and its last
 * failure is older than `lockMinutes` (failures that far apart do not add up).
 */
async function checkNow(ctx: Ctx, opts: WebOptions, email: string, password: string, as: CheckAs): Promise<UserDoc> {
  const now = new Date();
  const detail = { email, ...(as.via === 'login' ? {} : { via: as.via }) };
  let throttle = await ctx.c.loginThrottle.findOne({ _id: email });
  const lapsed = throttle && (throttle.lockedUntil ? throttle.lockedUntil <= now : throttle.updatedAt.getTime() <= now.getTime() - opts.lockMinutes * 60_000);
  if (lapsed) {
    await ctx.c.loginThrottle.deleteOne({ _id: email });
    throttle = null;
  }
  if (throttle?.lockedUntil) {
    const until = throttle.lockedUntil;
    if (throttle.refusalAuditedFor?.getTime() !== until.getTime()) {
      await audit(ctx.c, { actor: as.actor, type: 'auth.login-refused-locked', detail });
      await ctx.c.loginThrottle.updateOne({ _id: email }, { $set: { refusalAuditedFor: until } });
    }
    throw new ApiError('auth.locked', [], `Too many failed logins: this account is locked until ${until.toISOString().slice(11, 16)} UTC.`);
  }
  const user = await ctx.c.users.findOne({ email });
  const ok = await verify(user?.passwordHash ?? (await DUMMY_HASH), password).catch(() => false);
  if (!user || !ok || user.disabled) {
    const failures = (throttle?.failures ?? 0) + 1;
    const lockedUntil = failures >= opts.maxFailedLogins ? new Date(now.getTime() + opts.lockMinutes * 60_000) : null;
    const update = lockedUntil ? { $set: { failures: 0, lockedUntil, updatedAt: now } } : { $inc: { failures: 1 }, $set: { lockedUntil, updatedAt: now } };
    await ctx.c.loginThrottle.updateOne({ _id: email }, update, { upsert: true });
    await audit(ctx.c, { actor: as.actor, type: lockedUntil ? 'auth.locked' : 'auth.login-failed', detail: { ...detail, failures } });
    throw lockedUntil ? apiError('auth.locked') : apiError('auth.invalid', as.via === 'login' ? 'Wrong email or password.' : 'The current password is wrong.');
  }
  if (throttle) await ctx.c.loginThrottle.deleteOne({ _id: email });
  if (as.via === 'login') await audit(ctx.c, { actor: userActor(user), type: 'auth.login', detail });
  return user;
}
