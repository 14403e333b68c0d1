import { Router } from 'express';
import { setUserAccounts } from '../../commands/userAccounts.ts';
import type { Ctx } from '../../context.ts';
import { presentUser } from '../../presenters/user.ts';
import { userAccountsSchema, userRefSchema } from '../../schemas/users.ts';
import { validate } from '../validate.ts';

/** Users (admins: web/roles.ts 'users.write'): the list, and each person's own account per OS. */
export function userRoutes(ctx: Ctx): Router {
  const r = Router();

  r.get('/users', async (_req, res) => {
    const users = await ctx.c.users.find().sort({ email: 1 }).toArray();
    res.json({ users: users.map(presentUser) });
  });

  r.put('/users/:id/accounts', async (req, res) => {
    const { id } = validate(userRefSchema, req.params);
    const accounts = validate(userAccountsSchema, req.body ?? {});
    res.json(presentUser(await setUserAccounts(ctx, id, accounts, res.locals.actor)));
  });

  return r;
}
