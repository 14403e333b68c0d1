import type { Response, Router } from 'express';
import { z } from 'zod';
import { ACCOUNT_OSES, ownAccount, setUserAccounts } from '../../commands/userAccounts.ts';
import { ApiError, invalid } from '../../errors.ts';
import { validate } from '../../http/validate.ts';
import { userAccountsSchema } from '../../schemas/users.ts';
import { OS_LABEL } from '../../../protocol/groups.ts';
import { base, need, str, type Web } from '../page.ts';
import { ROLES, ROLE_LABEL } from '../roles.ts';
import { render } from '../render.ts';
import { changePassword, checkCurrentPassword, createApiToken, createUser, updateUser, userActor } from '../users.ts';
import { formErrors } from '../wizardForm.ts';

const NewUser = z.strictObject({ email: z.email({ error: 'must be a valid email address' }).max(254), role: z.enum(ROLES, { error: 'choose a role' }), password: z.string() });
const UserChange = z.strictObject({ role: z.enum(ROLES), disabled: z.boolean() });

/** A refused accounts form: whose, what was typed, and the errors per OS. */
interface AccountsRefused {
  id: string;
  typed: Record<string, string>;
  errors: Record<string, string[]>;
}

/** Users and roles (admins), each person's own account per OS (admins), and each user's own account: password and personal API token. */
export function userPages(r: Router, { ctx, opts }: Web): void {
  const page = async (res: Response, extra: object = {}, status = 200, refused?: AccountsRefused) => {
    const users = await ctx.c.users.find().sort({ email: 1 }).toArray();
    render(res, 'users', {
      ...base(res, 'Users', 'users'),
      roles: ROLES.map((r) => ({ value: r, label: ROLE_LABEL[r] })),
      users: users.map((u) => ({
        id: u._id, email: u.email, role: u.role, disabled: u.disabled, createdBy: u.createdBy, createdAt: u.createdAt, self: u._id === res.locals.signed.user._id,
        // The form shows the mapping (what was typed, when refused); the placeholder is the default it falls back on.
        accounts: ACCOUNT_OSES.map((os) => ({
          os, label: OS_LABEL[os],
          value: refused?.id === u._id ? (refused.typed[os] ?? '') : (u.accounts?.[os] ?? ''),
          placeholder: ownAccount(u.email, os),
        })),
        accountErrors: refused?.id === u._id ? refused.errors : {},
      })),
      ...extra,
    }, status);
  };

  r.get('/users', async (_req, res) => {
    need(res, 'users.write');
    await page(res);
  });

  r.post('/users', async (req, res) => {
    need(res, 'users.write');
    const f = { email: str(req.body.email).trim(), role: str(req.body.role), password: str(req.body.password) };
    try {
      const u = await createUser(ctx, validate(NewUser, f), res.locals.actor);
      await page(res, { saved: `User ${u.email} created as ${u.role}.` });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const errors = err.fields.length ? formErrors(err.fields) : { email: [err.message] };
      await page(res, { f: { email: f.email, role: f.role }, errors }, err.status);
    }
  });

  r.post('/users/:id', async (req, res) => {
    need(res, 'users.write');
    const id = validate(z.string().min(1).max(100), req.params.id);
    if (id === res.locals.signed.user._id) throw invalid([{ field: 'role', message: 'you cannot change your own role or lock yourself out' }]);
    const u = await updateUser(ctx, id, validate(UserChange, { role: str(req.body.role), disabled: req.body.disabled === 'on' }), res.locals.actor);
    await page(res, { saved: `User ${u.email} is now ${u.disabled ? 'disabled' : u.role}.` });
  });

  /** A person's own account per OS (empty: the email's local part): the API's schema and command. */
  r.post('/users/:id/accounts', async (req, res) => {
    need(res, 'users.write');
    const id = validate(z.string().min(1).max(100), req.params.id);
    const typed = Object.fromEntries(ACCOUNT_OSES.map((os) => [os, str(req.body[os])]));
    try {
      const u = await setUserAccounts(ctx, id, validate(userAccountsSchema, typed), res.locals.actor);
      const own = ACCOUNT_OSES.map((os) => `${OS_LABEL[os]} ${ownAccount(u.email, os, u.accounts)}`).join(', ');
      await page(res, { saved: `${u.email}'s requests elevate their own account: ${own}.` });
    } catch (err) {
      if (!(err instanceof ApiError) || !err.fields.length) throw err;
      await page(res, { accountsRefused: true }, 400, { id, typed, errors: formErrors(err.fields) });
    }
  });

  const account = (res: Response, extra: object = {}, status = 200) => render(res, 'account', { ...base(res, 'My account', 'account'), hasToken: Boolean(res.locals.signed.user.apiTokenHash), ...extra }, status);

  r.get('/account', (_req, res) => account(res));

  r.post('/account/password', async (req, res) => {
    const { user, session } = res.locals.signed;
    try {
      // Throttled and locked as logins are (web/users.ts).
      await checkCurrentPassword(ctx, opts, user, str(req.body.current));
    } catch (err) {
      if (!(err instanceof ApiError) || (err.id !== 'auth.invalid' && err.id !== 'auth.locked')) throw err;
      return account(res, { errors: { current: [err.id === 'auth.locked' ? err.message : 'is wrong'] } }, err.id === 'auth.locked' ? err.status : 400);
    }
    try {
      await changePassword(ctx, user, str(req.body.password), userActor(user), session._id);
    } catch (err) {
      if (err instanceof ApiError && err.fields.length) return account(res, { errors: formErrors(err.fields) }, 400);
      throw err;
    }
    delete res.locals.signed.user.apiTokenHash;
    account(res, { saved: 'Password changed. Your other sessions are signed out and your API token no longer works.' });
  });

  r.post('/account/api-token', async (_req, res) => {
    const token = await createApiToken(ctx, res.locals.signed.user);
    account(res, { token, hasToken: true });
  });
}
