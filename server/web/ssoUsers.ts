/**
 * The console user behind a sign-in with OpenID Connect (web/oidc.ts), matched by email. A new
 * person gets a user with the role the IdP's claims give (or the default); an existing one gets
 * the claims' role when they map to one (the IdP is where groups are managed), else keeps theirs.
 * A disabled user stays out. Local passwords stay as they are (the break-glass admin); a user made
 * here has an unknown random password, so it signs in only through the IdP until an admin sets one.
 */
import { randomUUID } from 'node:crypto';
import { hash } from '@node-rs/argon2';
import type { Ctx } from '../context.ts';
import { newToken } from '../secrets.ts';
import { audit } from '../store/audit.ts';
import type { UserDoc } from '../store/collections.ts';
import { SsoRefused, type SsoIdentity } from './oidc.ts';

export async function ssoUser(ctx: Pick<Ctx, 'c'>, id: SsoIdentity): Promise<UserDoc> {
  const actor = `sso:${id.email}`;
  const known = await ctx.c.users.findOne({ email: id.email });
  if (known?.disabled) throw new SsoRefused(`${id.email} is disabled here`);
  if (known) {
    const groupsChanged = JSON.stringify(known.idpGroups ?? []) !== JSON.stringify(id.groups);
    const role = id.mapped && id.role !== null && id.role !== known.role ? id.role : null;
    if (!groupsChanged && !role) return known;
    await ctx.c.users.updateOne({ _id: known._id }, { $set: { idpGroups: id.groups, ...(role ? { role } : {}), updatedAt: new Date() } });
    if (role) await audit(ctx.c, { actor, type: 'user.updated', detail: { email: id.email, role, from: known.role, via: 'sso claims' } });
    return { ...known, idpGroups: id.groups, ...(role ? { role } : {}) };
  }
  if (id.role === null) throw new SsoRefused(`no role for ${id.email}: ask an admin to map one of your groups`);
  const now = new Date();
  const user: UserDoc = { _id: randomUUID(), email: id.email, role: id.role, idpGroups: id.groups, passwordHash: await hash(newToken('unusable')), disabled: false, createdBy: actor, createdAt: now, updatedAt: now };
  try {
    await ctx.c.users.insertOne(user);
  } catch (err) {
    // The same person signing in twice at once: the unique email index keeps one; use it.
    if ((err as { code?: unknown }).code !== 11000) throw err;
    return (await ctx.c.users.findOne({ email: id.email }))!;
  }
  await audit(ctx.c, { actor, type: 'user.created', detail: { email: id.email, role: id.role, via: 'sso' } });
  return user;
}
