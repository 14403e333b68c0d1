import type { SmtpPolicyDoc } from '../store/collections.ts';

/** SMTP settings as the API shows them: whether a password is set, never the password. */
export function presentSmtpPolicy(d: SmtpPolicyDoc) {
  return {
    scope: d._id,
    host: d.host,
    port: d.port,
    security: d.security,
    username: d.username ?? null,
    passwordSet: Boolean(d.passwordBox),
    from: d.from,
    organisation: d.organisation ?? null,
    timeZone: d.timeZone,
    tlsCa: d.tlsCa ?? null,
    updatedBy: d.updatedBy,
    updatedAt: d.updatedAt.toISOString(),
    ...(d.security === 'none' ? { warning: 'security "none" sends credentials in clear text: use it only in a lab' } : {}),
  };
}
