/**
 * The SMTP settings form ↔ smtpPolicyInput. The password is write-only: an
 * empty field keeps the stored one, the "clear" box removes it.
 */
import { verifySmtp } from '../../mail/smtp.ts';
import type { SmtpTestResult } from '../../protocol/messages.ts';
import { effectivePolicy, toSmtpSettings } from '../commands/smtpPolicies.ts';
import type { Ctx } from '../context.ts';
import { apiError } from '../errors.ts';
import { presentSmtpPolicy } from '../presenters/smtp.ts';
import { audit } from '../store/audit.ts';
import type { SmtpPolicyDoc } from '../store/collections.ts';
import { str } from './console.ts';

const ENDPOINT_TEST_MS = 30_000;

/** The form's fields as typed, kept to re-show them (never the password). */
export interface SmtpForm {
  host: string;
  port: string;
  security: string;
  username: string;
  from: string;
  timeZone: string;
  tlsCa: string;
  passwordSet: boolean;
}

export function formOf(d: SmtpPolicyDoc | null): SmtpForm {
  const p = d ? presentSmtpPolicy(d) : null;
  return { host: p?.host ?? '', port: String(p?.port ?? 587), security: p?.security ?? 'starttls', username: p?.username ?? '', from: p?.from ?? '', timeZone: p?.timeZone ?? 'UTC', tlsCa: p?.tlsCa ?? '', passwordSet: p?.passwordSet ?? false };
}

export function readSmtpForm(body: Record<string, unknown>, passwordSet: boolean): { form: SmtpForm; input: Record<string, unknown> } {
  const form: SmtpForm = {
    host: str(body.host).trim(),
    port: str(body.port).trim(),
    security: str(body.security),
    username: str(body.username).trim(),
    from: str(body.from).trim(),
    timeZone: str(body.timeZone).trim() || 'UTC',
    tlsCa: str(body.tlsCa).trim(),
    passwordSet,
  };
  const password = str(body.password);
  const input: Record<string, unknown> = {
    host: form.host,
    port: /^\d+$/.test(form.port) ? Number(form.port) : form.port,
    security: form.security,
    username: form.username || null,
    from: form.from,
    timeZone: form.timeZone,
    tlsCa: form.tlsCa || null,
  };
  if (body.clearPassword === 'on') input.password = null;
  else if (password) input.password = password;
  return { form, input };
}

/** Tests the server's own SMTP settings from the server, as POST /api/v1/server-smtp/test does. */
export async function testServerSmtp(ctx: Ctx, actor: string): Promise<SmtpTestResult> {
  const doc = await effectivePolicy(ctx, 'server');
  if (!doc) throw apiError('settings.missing');
  const result = await verifySmtp(toSmtpSettings(ctx, doc));
  await audit(ctx.c, { actor, type: 'settings.smtp-tested', detail: { from: 'server', ...result } });
  return result;
}

/** Asks an endpoint to test its effective settings, as POST /api/v1/agent-settings/test does. */
export async function testEndpointSmtp(ctx: Ctx, endpoint: string, actor: string): Promise<SmtpTestResult & { hostname: string }> {
  const e = await ctx.c.endpoints.findOne({ $or: [{ _id: endpoint }, { hostname: endpoint }] });
  if (!e) throw apiError('endpoint.not_found');
  const result = await ctx.smtpTests.run(e._id, ENDPOINT_TEST_MS);
  if (!result) throw apiError('endpoint.no_answer');
  await audit(ctx.c, { actor, type: 'settings.smtp-tested', endpointId: e._id, detail: { from: e.hostname, ...result } });
  return { ...result, hostname: e.hostname };
}
