/**
 * SMTP settings: the server's own (`server`), the Agent Settings policy
 * (`default`) and per-endpoint overrides (`endpoint:<id>`).
 */
import { encryptSecret } from '../../mail/secretBox.ts';
import type { Ctx } from '../context.ts';
import { apiError, invalid } from '../errors.ts';
import { secretKeyOf } from '../mail/serverSmtp.ts';
import type { SmtpPolicyInput } from '../schemas/smtp.ts';
import { audit } from '../store/audit.ts';
import type { SmtpPolicyDoc } from '../store/collections.ts';

export { serverPolicy, toSmtpSettings } from '../mail/serverSmtp.ts';

export type Scope = 'server' | 'default' | `endpoint:${string}`;
export const endpointScope = (endpointId: string): Scope => `endpoint:${endpointId}`;

/** Stores one scope's settings; the password is encrypted before it is written. */
export async function savePolicy(ctx: Ctx, scope: Scope, input: SmtpPolicyInput, actor: string): Promise<SmtpPolicyDoc> {
  const before = await ctx.c.smtpPolicies.findOne({ _id: scope });
  let passwordBox = before?.passwordBox;
  if (input.password === null) passwordBox = undefined;
  else if (input.password !== undefined) {
    const k = secretKeyOf(ctx.config);
    if (!k) throw invalid([{ field: 'password', message: 'the server has no secretKey (JIT_SECRET_KEY) to encrypt it with' }]);
    passwordBox = encryptSecret(input.password, k);
  }
  const username = input.username ?? undefined;
  if ((username === undefined) !== (passwordBox === undefined)) {
    throw invalid([{ field: 'password', message: 'username and password go together' }]);
  }
  const doc: SmtpPolicyDoc = {
    _id: scope,
    host: input.host,
    port: input.port,
    security: input.security,
    from: input.from,
    timeZone: input.timeZone,
    ...(username ? { username } : {}),
    ...(passwordBox ? { passwordBox } : {}),
    ...(input.tlsCa ? { tlsCa: input.tlsCa } : {}),
    ...(input.organisation ? { organisation: input.organisation } : {}),
    updatedBy: actor,
    updatedAt: new Date(),
  };
  await ctx.c.smtpPolicies.replaceOne({ _id: scope }, doc, { upsert: true });
  ctx.policyRevisions.forget(scope);
  await audit(ctx.c, { actor, type: 'settings.smtp-saved', detail: { scope, host: doc.host, port: doc.port, security: doc.security, passwordChanged: input.password !== undefined } });
  ctx.hub.notifyAll();
  return doc;
}

export async function deletePolicy(ctx: Ctx, scope: Scope, actor: string): Promise<void> {
  const res = await ctx.c.smtpPolicies.deleteOne({ _id: scope });
  ctx.policyRevisions.forget(scope);
  if (res.deletedCount === 0) throw apiError('settings.not_found');
  await audit(ctx.c, { actor, type: 'settings.smtp-deleted', detail: { scope } });
  ctx.hub.notifyAll();
}

/** The Agent Settings that apply to an endpoint: its override, else the default policy. */
export async function effectivePolicy(ctx: Ctx, endpointId: string): Promise<SmtpPolicyDoc | null> {
  return (await ctx.c.smtpPolicies.findOne({ _id: endpointScope(endpointId) })) ?? ctx.c.smtpPolicies.findOne({ _id: 'default' });
}

/** Changes whenever the endpoint's effective settings may have changed. */
export async function settingsRevision(ctx: Ctx, endpointId: string): Promise<string> {
  const [base, own] = await Promise.all([ctx.policyRevisions.time('default'), ctx.policyRevisions.time(endpointScope(endpointId))]);
  return `${base}.${own}`;
}
