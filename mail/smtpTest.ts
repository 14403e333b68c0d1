import { renderEmail } from './render.ts';
import { MailError, sendMail, verifySmtp, type SmtpSettingsInput, type VerifyResult } from './smtp.ts';

/**
 * "Test these settings": connect and authenticate, and when `to` is given also
 * send a real test message there. Never throws; the reason never holds a password.
 */
export async function testSmtp(settings: SmtpSettingsInput, opts: { sender: string; to?: string; overrideDir?: string }): Promise<VerifyResult> {
  const verified = await verifySmtp(settings);
  if (!verified.ok || !opts.to) return verified;
  try {
    const mail = renderEmail('smtp-test', { endpoint: opts.sender, email: opts.to, sentAt: new Date(), ...(settings.organisation ? { organisation: settings.organisation } : {}) }, { timeZone: settings.timeZone ?? 'UTC', ...(opts.overrideDir ? { overrideDir: opts.overrideDir } : {}) });
    await sendMail(settings, { to: opts.to, ...mail });
    return { ok: true };
  } catch (err) {
    return err instanceof MailError ? { ok: false, code: err.code, reason: err.message } : { ok: false, code: 'unknown', reason: (err as Error).message };
  }
}
