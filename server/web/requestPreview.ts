/**
 * What the rules would do with a request, before it is sent: the Request access page asks this
 * (GET /requests/preview) whenever its form changes. Read-only: the same `decide` over the same
 * stored rules as commands/requests.ts's fileRequest, with the same facts (requestFacts: the caller,
 * the endpoint and its tags, the group, the minutes, now); nothing is stored or audited.
 */
import { z } from 'zod';
import { GROUPS } from '../../protocol/groups.ts';
import type { Caller } from '../commands/decideRequest.ts';
import { currentRules, idpGroupsOf, requestFacts } from '../commands/requestRules.ts';
import type { Ctx } from '../context.ts';
import { decide, type RuleDecision } from '../domain/rules.ts';
import { apiError } from '../errors.ts';
import { validate } from '../http/validate.ts';
import { findEndpoints } from '../store/endpoints.ts';

export const PreviewQuery = z.object({
  endpoint: z.string().trim().min(1, 'choose an endpoint').max(100),
  group: z.enum(GROUPS, { error: 'choose a group' }),
  minutes: z.coerce.number({ error: 'must be a whole number of minutes' }).int('must be a whole number of minutes').min(1, 'must be more than zero'),
});
export type PreviewInput = z.infer<typeof PreviewQuery>;

export interface Preview extends RuleDecision {
  /** The decision in words, as the page shows it. */
  says: string;
}

/** The decision in words: who decides, or what happens at once. */
export function says(d: RuleDecision): string {
  const by = d.rule === 'default' ? 'no rule matches: ' : `the rule "${d.rule}": `;
  if (d.action === 'auto-approve') return `${by}approved at once, no approver needed`;
  if (d.action === 'deny') return `${by}denied at once`;
  return `${by}${d.approvers.length ? `one of ${d.approvers.join(', ')} decides` : 'an approver decides'}`;
}

/** The rules' decision for these values now; 400 when they are incomplete or name no one endpoint. */
export async function previewRequest(ctx: Ctx, who: Caller, query: unknown, at = new Date()): Promise<Preview> {
  const q = validate(PreviewQuery, query);
  const [endpoint, ...more] = await findEndpoints(ctx.c, q.endpoint);
  if (!endpoint || more.length) throw apiError('request.invalid', endpoint ? 'the hostname names several endpoints' : 'unknown endpoint');
  const d = decide(await currentRules(ctx), requestFacts({ ...who, groups: await idpGroupsOf(ctx, who.email) }, endpoint, q.group, q.minutes, at));
  return { ...d, says: says(d) };
}

/** The preview for values that may be incomplete (a form being re-shown): null instead of a 400. */
export async function previewOrNull(ctx: Ctx, who: Caller, query: unknown): Promise<Preview | null> {
  try {
    return await previewRequest(ctx, who, query);
  } catch (err) {
    if ((err as { status?: number }).status === 400) return null;
    throw err;
  }
}
