/**
 * What the server refuses of an elevate-account request before anything is stored (400, the
 * field and why): an endpoint whose agent cannot elevate, an account name its OS would not have,
 * an excluded, system or temporary (ours) account, and a grant that overlaps a live one for the
 * same account and group. What only the endpoint can know (the account exists) the agent checks,
 * failing the grant with its reason; the inventory it reports lets the server refuse earlier (our
 * temporary accounts have random names: only the inventory's `managed` tells them).
 */
import { ELEVATION_ACCOUNT, isBuiltInWindowsSid } from '../../protocol/accounts.ts';
import type { OperatingSystem } from '../../protocol/groups.ts';
import type { Ctx } from '../context.ts';
import { LIVE_STATES } from '../domain/lifecycle.ts';
import type { FieldIssue } from '../errors.ts';
import type { CreateGrantInput } from '../schemas/grants.ts';
import type { EndpointDoc } from '../store/collections.ts';


/** Accounts no grant may elevate, whatever the inventory says. */
const BUILT_IN: Record<OperatingSystem, (name: string) => boolean> = {
  linux: (n) => ['root', 'nobody'].includes(n.toLowerCase()),
  macos: (n) => n.startsWith('_') || ['root', 'daemon', 'nobody'].includes(n.toLowerCase()),
  windows: (n) => {
    const user = n.split('\\').pop()!.toLowerCase();
    return ['administrator', 'guest', 'defaultaccount', 'wdagutilityaccount'].includes(user) || (n.startsWith('S-1-') && isBuiltInWindowsSid(n));
  },
};

/** Whether `name` is one of the accounts no grant may elevate on `os` (root, Administrator, …), by its name alone. */
export const isBuiltInAccount = (os: OperatingSystem, name: string): boolean => BUILT_IN[os](name);

/** Whether the config's `elevation.excludedAccounts` lists `account` (any letter case; a Windows `DOMAIN\user` by its user too). */
export function isExcludedAccount(ctx: Pick<Ctx, 'config'>, account: string): boolean {
  const key = account.toLowerCase();
  const excluded = ctx.config.elevation.excludedAccounts.map((a) => a.toLowerCase());
  return excluded.includes(key) || excluded.includes(key.split('\\').pop()!);
}

export async function elevationIssues(ctx: Ctx, input: CreateGrantInput, endpoints: EndpointDoc[]): Promise<FieldIssue[]> {
  // Passwordless sudo, for either operation: only where the agent said it can give it.
  const issues: FieldIssue[] = endpoints
    .filter((e) => input.passwordlessSudo && !(e.capabilities ?? []).includes('passwordless-sudo'))
    .map((e) => ({ field: 'passwordlessSudo', message: `${e.hostname} cannot give sudo without a password (sudo is not installed there, or it is Windows)` }));
  if (input.operation !== 'elevate-account') return issues;
  const account = input.account!;
  const key = account.toLowerCase();
  if (isExcludedAccount(ctx, account)) issues.push({ field: 'account', message: `${account} is excluded from elevation by policy` });
  for (const [i, e] of endpoints.entries()) {
    const at = `${e.hostname}`;
    const caps = e.capabilities ?? [];
    if (!caps.includes('elevate-account')) {
      issues.push({ field: `endpoints.${i}`, message: `the agent on ${at} cannot elevate existing accounts (update the agent; it says what it can do when it starts)` });
      continue;
    }
    if (!ELEVATION_ACCOUNT[e.os].test(account)) {
      issues.push({ field: 'account', message: `not an account name ${e.os === 'windows' ? 'Windows' : e.os === 'macos' ? 'macOS' : 'Linux'} has (${e.hostname})` });
      continue;
    }
    const known = e.accounts?.find((a) => a.name.toLowerCase() === key || a.id === account);
    if (BUILT_IN[e.os](account) || known?.system) issues.push({ field: 'account', message: `${account} is a system account on ${at}: not elevated` });
    else if (known?.managed) issues.push({ field: 'account', message: `${account} is a temporary account of this service: not elevated` });
  }
  issues.push(...(await overlaps(ctx, input, endpoints)));
  return dedupe(issues);
}

/** A live elevation of the same account and group on the same endpoint whose window meets this one. */
async function overlaps(ctx: Ctx, input: CreateGrantInput, endpoints: EndpointDoc[]): Promise<FieldIssue[]> {
  const live = await ctx.c.grants
    .find({ endpointId: { $in: endpoints.map((e) => e._id) }, operation: 'elevate-account', group: input.group, state: { $in: [...LIVE_STATES] } })
    .toArray();
  const key = input.account!.toLowerCase();
  return live
    .filter((g) => g.account?.toLowerCase() === key && g.startAt < input.endAt && input.startAt < g.endAt)
    .map((g) => ({ field: 'account', message: `${input.account} is already elevated to ${g.group} on ${g.hostname} from ${g.startAt.toISOString()} to ${g.endAt.toISOString()} (grant ${g._id})` }));
}

function dedupe(issues: FieldIssue[]): FieldIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => !seen.has(`${i.field}|${i.message}`) && seen.add(`${i.field}|${i.message}`));
}
