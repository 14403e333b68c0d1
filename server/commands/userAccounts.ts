/**
 * A person's own account on an endpoint: what their access requests elevate. By default the
 * email's local part (alice@corp → alice); an admin may set another per OS (a Windows domain
 * account `CORP\alice`, a Linux login that differs from the email). Every change is audited
 * (`user.accounts-changed`, with the mapping before and after).
 */
import { ELEVATION_ACCOUNT } from '../../protocol/accounts.ts';
import { OS_LABEL, type OperatingSystem } from '../../protocol/groups.ts';
import type { Ctx } from '../context.ts';
import { apiError, invalid, type FieldIssue } from '../errors.ts';
import { audit } from '../store/audit.ts';
import { emailKey, type AccountMap, type UserDoc } from '../store/collections.ts';
import { escapeRegex, sameText } from '../store/match.ts';
import { isBuiltInAccount, isExcludedAccount } from './elevationChecks.ts';

export const ACCOUNT_OSES = ['linux', 'macos', 'windows'] as const satisfies readonly OperatingSystem[];

/**
 * The person's own account on an endpoint of `os`: the admin's mapping for that OS, else the
 * email's local part (lower-cased for Linux and macOS names).
 */
export function ownAccount(email: string, os: OperatingSystem, accounts?: AccountMap): string {
  const mapped = accounts?.[os];
  if (mapped) return mapped;
  const local = email.slice(0, email.lastIndexOf('@'));
  return os === 'windows' ? local : local.toLowerCase();
}

/** The mapping of the user with this email (none for an unknown email). */
export async function accountsOf(ctx: Pick<Ctx, 'c'>, email: string): Promise<AccountMap | undefined> {
  return (await ctx.c.users.findOne({ email: emailKey(email) }, { projection: { accounts: 1 } }))?.accounts;
}

/** A user by id, or by email (any letter case); 404 user.not_found. */
export async function findUser(ctx: Pick<Ctx, 'c'>, ref: string): Promise<UserDoc> {
  const u = (await ctx.c.users.findOne({ _id: ref })) ?? (ref.includes('@') ? await ctx.c.users.findOne({ email: emailKey(ref) }) : null);
  if (!u) throw apiError('user.not_found');
  return u;
}

/** What a mapping may not name: a name the OS has not got, an account no grant elevates (root, Administrator, the config's exclusions). */
function accountIssues(ctx: Pick<Ctx, 'config'>, accounts: AccountMap): FieldIssue[] {
  return ACCOUNT_OSES.flatMap((os) => {
    const a = accounts[os];
    if (!a) return [];
    if (!ELEVATION_ACCOUNT[os].test(a)) return [{ field: os, message: `not an account name ${OS_LABEL[os]} has${os === 'windows' ? ' (a name, DOMAIN\\user or a SID)' : ''}` }];
    if (isBuiltInAccount(os, a)) return [{ field: os, message: `${a} is a ${OS_LABEL[os]} system account: nobody's own` }];
    if (isExcludedAccount(ctx, a)) return [{ field: os, message: `${a} is excluded from elevation by policy` }];
    return [];
  });
}

/** The people whose own account on `os` is `account`: their mapping, or their email's local part where they have none. */
async function ownersOf(ctx: Pick<Ctx, 'c'>, os: OperatingSystem, account: string): Promise<UserDoc[]> {
  const candidates = await ctx.c.users.find({ $or: [{ [`accounts.${os}`]: sameText(account) }, { email: { $regex: `^${escapeRegex(account)}@`, $options: 'i' } }] }).toArray();
  return candidates.filter((u) => ownAccount(u.email, os, u.accounts).toLowerCase() === account.toLowerCase());
}

/** Another person whose own account on `os` is `account`: their email, or undefined. A request would elevate their account. */
export async function otherOwner(ctx: Pick<Ctx, 'c'>, os: OperatingSystem, account: string, exceptEmail: string): Promise<string | undefined> {
  return (await ownersOf(ctx, os, account)).find((u) => u.email !== emailKey(exceptEmail))?.email;
}

/**
 * The person whose own account on `os` is `account` (a request filed on the endpoint itself names
 * the OS account, never a person): the one user, or 404 request.no_person / 409 request.account_shared.
 */
export async function personOfAccount(ctx: Pick<Ctx, 'c'>, os: OperatingSystem, account: string): Promise<UserDoc> {
  const owners = await ownersOf(ctx, os, account);
  if (owners.length > 1) throw apiError('request.account_shared', `${account} is more than one person's own account on ${OS_LABEL[os]}: an admin must map theirs (Users page) first.`);
  if (!owners.length) throw apiError('request.no_person', `${account} is nobody's own account on ${OS_LABEL[os]}: an admin maps it to a person on the Users page.`);
  return owners[0]!;
}

async function takenIssues(ctx: Pick<Ctx, 'c'>, u: UserDoc, accounts: AccountMap): Promise<FieldIssue[]> {
  const issues: FieldIssue[] = [];
  for (const os of ACCOUNT_OSES) {
    const a = accounts[os];
    const owner = a ? await otherOwner(ctx, os, a, u.email) : undefined;
    if (owner) issues.push({ field: os, message: `${a} is ${owner}'s own account on ${OS_LABEL[os]}` });
  }
  return issues;
}

/** Replaces the user's mapping (an empty one: the email's local part everywhere); every field checked first (400 per field, nothing stored), audited. */
export async function setUserAccounts(ctx: Ctx, ref: string, accounts: AccountMap, actor: string): Promise<UserDoc> {
  const u = await findUser(ctx, ref);
  const issues = accountIssues(ctx, accounts);
  issues.push(...(await takenIssues(ctx, u, accounts)).filter((t) => !issues.some((i) => i.field === t.field)));
  if (issues.length) throw invalid(issues);
  const empty = Object.keys(accounts).length === 0;
  const now = new Date();
  await ctx.c.users.updateOne({ _id: u._id }, empty ? { $unset: { accounts: '' }, $set: { updatedAt: now } } : { $set: { accounts, updatedAt: now } });
  await audit(ctx.c, { actor, type: 'user.accounts-changed', detail: { email: u.email, accounts, previous: u.accounts ?? {} } });
  const { accounts: _old, ...rest } = u;
  return { ...rest, ...(empty ? {} : { accounts }), updatedAt: now };
}
