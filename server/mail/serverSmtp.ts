/**
 * Reading stored SMTP settings for sending: the server's own policy, and any policy
 * made ready for nodemailer with its password decrypted (in memory only). Takes the
 * collections and the config rather than the whole Ctx, so the mailer can use it
 * without an import cycle through the context (which holds the mailer).
 */
import type { SmtpSettingsInput } from '../../mail/smtp.ts';
import { decryptSecret, parseKey } from '../../mail/secretBox.ts';
import type { ServerConfig } from '../config.ts';
import type { Collections, SmtpPolicyDoc } from '../store/collections.ts';

/** The key SMTP passwords are sealed with (JIT_SECRET_KEY), or null when none is configured. */
export function secretKeyOf(config: Pick<ServerConfig, 'secretKey'>): Buffer | null {
  return config.secretKey ? parseKey(config.secretKey) : null;
}

/** The server's own SMTP settings (server-side delivery), or null. */
export function serverPolicy(ctx: { c: Collections }): Promise<SmtpPolicyDoc | null> {
  return ctx.c.smtpPolicies.findOne({ _id: 'server' });
}

/** Settings ready for nodemailer, password decrypted (in memory only). */
export function toSmtpSettings(ctx: { config: Pick<ServerConfig, 'secretKey'> }, doc: SmtpPolicyDoc): SmtpSettingsInput & { timeZone: string } {
  const k = secretKeyOf(ctx.config);
  if (doc.passwordBox && !k) throw new Error('an SMTP password is stored but the server has no secretKey to decrypt it');
  const { organisation } = doc;
  return {
    host: doc.host,
    port: doc.port,
    security: doc.security,
    from: doc.from,
    timeZone: doc.timeZone,
    ...(doc.username ? { username: doc.username } : {}),
    ...(doc.passwordBox ? { password: decryptSecret(doc.passwordBox, k!) } : {}),
    ...(doc.tlsCa ? { tlsCa: doc.tlsCa } : {}),
    ...(organisation ? { organisation } : {}),
  };
}
