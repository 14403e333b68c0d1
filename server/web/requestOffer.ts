/**
 * Which endpoints the Request access page offers a person: those where the rules would not deny
 * them, now, for the duration on the form, with the group they chose (or, before they chose one,
 * with some group the endpoint's OS has among `requests.groups`). The same `decide` over the same
 * facts as filing (commands/requestRules.ts requestFacts); read-only. The page asks again
 * (GET /requests/offer) whenever the group or the duration changes.
 */
import { GROUPS, osHonours, type Group, type OperatingSystem } from '../../protocol/groups.ts';
import type { Caller } from '../commands/decideRequest.ts';
import { currentRules, idpGroupsOf, requestFacts } from '../commands/requestRules.ts';
import type { Ctx } from '../context.ts';
import { decide } from '../domain/rules.ts';

/** What an endpoint's offer needs of it (listEndpoints' rows have it). */
export interface OfferEndpoint {
  id: string;
  hostname: string;
  os: OperatingSystem;
  tags: string[];
}

export interface Offer {
  group: Group | null;
  minutes: number;
  /** Endpoint id → the rule that denies every group asked about there; absent when offered. */
  deniedBy: Map<string, string>;
  /** The page's explanation of the list. */
  note: string;
}

/** The group and the minutes as typed: an unknown group counts as none chosen, bad minutes as the form's default. */
export function offerInput(group: string, minutes: string, defaultMinutes: number): { group: Group | null; minutes: number } {
  const n = Number(minutes);
  return { group: (GROUPS as readonly string[]).includes(group) ? (group as Group) : null, minutes: Number.isInteger(n) && n > 0 ? n : defaultMinutes };
}

export async function offerFor(ctx: Ctx, who: Caller, endpoints: readonly OfferEndpoint[], q: { group: Group | null; minutes: number }, at = new Date()): Promise<Offer> {
  const rules = await currentRules(ctx);
  const person = { ...who, groups: await idpGroupsOf(ctx, who.email) };
  const allowed = ctx.config.requests.groups;
  const deniedBy = new Map<string, string>();
  for (const e of endpoints) {
    const groups = q.group && osHonours(e.os, q.group) ? [q.group] : allowed.filter((g) => osHonours(e.os, g));
    const decisions = groups.map((g) => decide(rules, requestFacts(person, e, g, q.minutes, at)));
    if (decisions.length && decisions.every((d) => d.action === 'deny')) deniedBy.set(e.id, decisions[0]!.rule);
  }
  return { ...q, deniedBy, note: offerNote(endpoints, q, deniedBy) };
}

/** "Listed: … Not listed: prod-db-1 (the rule "no prod")." At most 10 hostnames, then how many more. */
function offerNote(endpoints: readonly OfferEndpoint[], q: { group: Group | null; minutes: number }, deniedBy: Map<string, string>): string {
  const head = `Listed: the endpoints where the rules would not deny at once a request of yours for ${q.group ?? 'some group'}, ${q.minutes} minutes, now.`;
  const hidden = endpoints.filter((e) => deniedBy.has(e.id));
  if (!hidden.length) return `${head} None is left out.`;
  const named = hidden.slice(0, 10).map((e) => `${e.hostname} (the rule "${deniedBy.get(e.id)}")`).join(', ');
  return `${head} Not listed: ${named}${hidden.length > 10 ? ` and ${hidden.length - 10} more` : ''}.`;
}
