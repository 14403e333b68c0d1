/**
 * The SMTP settings form ↔ smtpPolicyInput. The password is write-only: an
 * empty field keeps the stored one, the "clear" box removes it.
 */
import type { Ctx } from '../context.ts';
import { presentSmtpPolicy } from '../presenters/smtp.ts';
import type { SmtpPolicyDoc } from '../store/collections.ts';
import { str } from './page.ts';

/** The form's fields as typed, kept to re-show them (never the password). */
export interface SmtpForm {
  host: string;
  port: string;
  security: string;
  username: string;
  from: string;
  /** Named in every email and in the default sender name. */
  organisation: string;
  timeZone: string;
  tlsCa: string;
  passwordSet: boolean;
}

export function formOf(d: SmtpPolicyDoc | null): SmtpForm {
  const p = d ? presentSmtpPolicy(d) : null;
  const organisation = d?.organisation ?? '';
  return { host: p?.host ?? '', port: String(p?.port ?? 587), security: p?.security ?? 'starttls', username: p?.username ?? '', from: p?.from ?? '', organisation, timeZone: p?.timeZone ?? 'UTC', tlsCa: p?.tlsCa ?? '', passwordSet: p?.passwordSet ?? false };
}

export function readSmtpForm(body: Record<string, unknown>, passwordSet: boolean): { form: SmtpForm; input: Record<string, unknown> } {
  const form: SmtpForm = {
    host: str(body.host).trim(),
    port: str(body.port).trim(),
    security: str(body.security),
    username: str(body.username).trim(),
    from: str(body.from).trim(),
    organisation: str(body.organisation).trim(),
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
    ...(form.organisation ? { organisation: form.organisation } : {}),
    timeZone: form.timeZone,
    tlsCa: form.tlsCa || null,
  };
  if (body.clearPassword === 'on') input.password = null;
  else if (password) input.password = password;
  return { form, input };
}

