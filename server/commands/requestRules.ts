/**
 * The request rules (domain/rules.ts): one stored, ordered list, replaced as a whole by an admin.
 * Each version is an audit event carrying the whole list, so the trail shows which rules were in
 * force when a request was decided (the request names the rule that decided it).
 */
import type { Ctx } from '../context.ts';
import type { RequestFacts, RequestRule } from '../domain/rules.ts';
import { audit } from '../store/audit.ts';
import type { EndpointDoc } from '../store/collections.ts';
import type { RequestRulesDoc } from '../store/requests.ts';

const EMPTY = { version: 0, rules: [] as RequestRule[] };

/**
 * What the rules look at for a request of `who` on an endpoint: one place, so filing
 * (commands/requests.ts), the preview and the Request access page's endpoint list agree.
 */
export function requestFacts(who: { email: string; role: string; groups?: readonly string[] }, e: Pick<EndpointDoc, 'hostname' | 'os' | 'tags'>, group: string, minutes: number, at: Date): RequestFacts {
  return { requesterEmail: who.email, requesterRole: who.role, requesterGroups: who.groups ?? [], hostname: e.hostname, os: e.os, tags: e.tags ?? [], group, minutes, at };
}

/** The groups claim a user brought at their last sign-in with OpenID Connect (web/ssoUsers.ts). */
export async function idpGroupsOf(ctx: Pick<Ctx, 'c'>, email: string): Promise<string[]> {
  return (await ctx.c.users.findOne({ email: email.trim().toLowerCase() }, { projection: { idpGroups: 1 } }))?.idpGroups ?? [];
}

export async function currentRules(ctx: Ctx): Promise<RequestRule[]> {
  return (await ctx.c.requestRules.findOne({ _id: 'rules' }))?.rules ?? [];
}

export async function rulesDoc(ctx: Ctx): Promise<Pick<RequestRulesDoc, 'version' | 'rules'> & Partial<RequestRulesDoc>> {
  return (await ctx.c.requestRules.findOne({ _id: 'rules' })) ?? EMPTY;
}

/** Replaces the list (under one lock, so versions never repeat) and audits the new version. */
export async function putRules(ctx: Ctx, rules: RequestRule[], actor: string): Promise<RequestRulesDoc> {
  return ctx.grantLocks.run('request-rules', async () => {
    const version = (await rulesDoc(ctx)).version + 1;
    const doc: RequestRulesDoc = { _id: 'rules', version, rules, updatedBy: actor, updatedAt: new Date() };
    await audit(ctx.c, { actor, type: 'request-rules.changed', detail: { version, rules } });
    await ctx.c.requestRules.replaceOne({ _id: 'rules' }, doc, { upsert: true });
    return doc;
  });
}
