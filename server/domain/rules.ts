/**
 * Request rules: an ordered list, the first rule whose every condition matches decides; a request
 * no rule matches needs an approver (the default rule). Pure: the facts come in, the decision
 * goes out, and the request stores which rule made it.
 *
 * A condition left out matches everything. Times are UTC (days 0 = Sunday; hours [from, to) in
 * whole hours, `to` below `from` wraps midnight).
 */
import { z } from 'zod';
import { GROUPS } from '../../protocol/groups.ts';
import { MAX_TAGS, TAG, TAG_RULE, sameTag } from './tags.ts';

export const RULE_ACTIONS = ['auto-approve', 'require-approval', 'deny'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

const pattern = z.string().trim().min(1).max(200);

export const RequestRule = z
  .object({
    name: z.string().trim().min(1).max(100),
    /** Requester emails, `role:<role>` (e.g. role:requester) or `group:<IdP group>` (the groups claim at the last SSO sign-in). */
    requesters: z.array(pattern).max(200).optional(),
    /** Hostname patterns: `*` any run of characters, `?` one; case-insensitive. */
    hostnames: z.array(pattern).max(200).optional(),
    os: z.array(z.enum(['linux', 'windows', 'macos'])).max(3).optional(),
    /** Endpoint tags: the endpoint needs one of them (any letter case). */
    tags: z.array(z.string().trim().refine((t) => TAG.test(t.toLowerCase()), `a tag is ${TAG_RULE}`)).min(1).max(MAX_TAGS).optional(),
    groups: z.array(z.enum(GROUPS)).max(3).optional(),
    /** Matches requests of at most this duration. */
    maxMinutes: z.number().int().min(1).max(90 * 24 * 60).optional(),
    days: z.array(z.number().int().min(0).max(6)).max(7).optional(),
    hours: z.object({ from: z.number().int().min(0).max(23), to: z.number().int().min(1).max(24) }).optional(),
    action: z.enum(RULE_ACTIONS),
    /** require-approval: only these approvers' emails may decide (any approver when left out). */
    approvers: z.array(z.string().trim().toLowerCase().email().max(254)).max(50).optional(),
  })
  .strict();
export type RequestRule = z.infer<typeof RequestRule>;

export const RequestRules = z.array(RequestRule).max(200);

/** What a rule looks at. */
export interface RequestFacts {
  requesterEmail: string;
  requesterRole: string;
  /** The requester's groups claim at their last sign-in with OpenID Connect (none for local users). */
  requesterGroups?: readonly string[];
  hostname: string;
  os: string;
  /** The endpoint's tags. */
  tags: readonly string[];
  group: string;
  minutes: number;
  /** When the request is filed. */
  at: Date;
}

export interface RuleDecision {
  action: RuleAction;
  /** The name of the rule that decided; `default` when none matched. */
  rule: string;
  /** Lower-cased emails; empty = any approver. */
  approvers: string[];
}

export const DEFAULT_DECISION: RuleDecision = { action: 'require-approval', rule: 'default', approvers: [] };

export function decide(rules: readonly RequestRule[], f: RequestFacts): RuleDecision {
  const hit = rules.find((r) => matches(r, f));
  return hit ? { action: hit.action, rule: hit.name, approvers: hit.approvers ?? [] } : DEFAULT_DECISION;
}

function matches(r: RequestRule, f: RequestFacts): boolean {
  const email = f.requesterEmail.toLowerCase();
  const role = `role:${f.requesterRole}`.toLowerCase();
  const who = [email, role, ...(f.requesterGroups ?? []).map((g) => `group:${g}`.toLowerCase())];
  const hour = f.at.getUTCHours();
  return (
    (!r.requesters || r.requesters.some((p) => who.includes(p.toLowerCase()))) &&
    (!r.hostnames || r.hostnames.some((p) => glob(p).test(f.hostname))) &&
    (!r.os || r.os.includes(f.os as 'linux')) &&
    (!r.tags || r.tags.some((t) => f.tags.some((x) => sameTag(t, x)))) &&
    (!r.groups || r.groups.includes(f.group as 'Users')) &&
    (r.maxMinutes === undefined || f.minutes <= r.maxMinutes) &&
    (!r.days || r.days.includes(f.at.getUTCDay())) &&
    (!r.hours || (r.hours.from < r.hours.to ? hour >= r.hours.from && hour < r.hours.to : hour >= r.hours.from || hour < r.hours.to))
  );
}

/** A hostname pattern as an anchored, case-insensitive regex: `*` and `?` are the only specials. */
function glob(p: string): RegExp {
  const body = p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}
