/**
 * Sending mail over SMTP with nodemailer: validated settings, one table of
 * stable error codes, and error texts that never carry the password.
 */
import { rootCertificates } from 'node:tls';
import nodemailer from 'nodemailer';
import type { NodemailerError, SMTPTransportOptions, Transporter } from 'nodemailer';
import { z } from 'zod';
import { CONTROL, senderOf, SmtpSettings, type SmtpSettingsInput } from './smtpSettings.ts';

export { SmtpSettings, type SmtpSettingsInput } from './smtpSettings.ts';

const email = z.email().refine((s) => !/[\r\n]/.test(s), 'must not contain line breaks');

/** One message; the subject must already be a single line (see `renderEmail`). */
export interface OutgoingMail {
  to: string;
  subject: string;
  html: string;
  text: string;
}

const OutgoingMail = z.object({
  to: email,
  subject: z.string().min(1).refine((s) => !CONTROL.test(s), 'must be a single line without control characters'),
  html: z.string(),
  text: z.string(),
});

/**
 * Every failure maps to one of these codes, which callers may branch on and store.
 * SMTP replies are looked at first (a 530 on MAIL FROM is a missing login, whatever step
 * nodemailer blames), then nodemailer's err.code, then the Node code under it.
 */
const MAIL_ERRORS = {
  invalid_settings: { reason: 'the SMTP settings are not valid', replies: [], codes: [] },
  invalid_message: { reason: 'the message is not valid', replies: [], codes: [] },
  // Credentials are configured but the server offers no AUTH (or none we can use): sending
  // anyway would go out unauthenticated, so it is a failure. Found by the AUTH command's
  // 5.5.x answer (see makeTransport's forceAuth), hence no replies or codes here.
  auth_unavailable: { reason: 'the SMTP server offers no login, but a username and password are configured', replies: [], codes: [] },
  auth_failed: { reason: 'the SMTP server refused the login', replies: [530, 534, 535], codes: ['EAUTH', 'ENOAUTH'] },
  // 538: the server wants TLS before AUTH. A refused certificate surfaces as ESOCKET with
  // Node's verification code (DEPTH_ZERO_SELF_SIGNED_CERT, ERR_TLS_CERT_ALTNAME_INVALID...)
  // as originalCode, hence the pattern.
  tls_failed: {
    reason: 'the TLS connection to the SMTP server failed',
    replies: [538],
    codes: ['ETLS', 'EREQUIRETLS', /CERT|TLS|SSL|^UNABLE_TO_|^INVALID_(CA|PURPOSE)$|^PATH_LENGTH_EXCEEDED$|^HOSTNAME_MISMATCH$/],
  },
  timeout: { reason: 'the SMTP server did not answer in time', replies: [], codes: ['ETIMEDOUT'] },
  connection_failed: { reason: 'could not connect to the SMTP server', replies: [421], codes: ['ECONNECTION', 'ESOCKET', 'EDNS'] },
  rejected: { reason: 'the SMTP server rejected the message', replies: [], codes: ['EENVELOPE', 'EMESSAGE'] },
  unknown: { reason: 'sending mail failed', replies: [], codes: [] },
} as const satisfies Record<string, { reason: string; replies: readonly number[]; codes: readonly (string | RegExp)[] }>;

/** A stable mail error code. */
export type MailErrorCode = keyof typeof MAIL_ERRORS;

/** A mail failure with a stable `code`; its message is safe to log and show (no password). */
export class MailError extends Error {
  readonly code: MailErrorCode;
  /** The SMTP reply code, when the server sent one. */
  readonly responseCode: number | undefined;
  constructor(code: MailErrorCode, detail?: string, responseCode?: number) {
    super(detail ? `${MAIL_ERRORS[code].reason}: ${detail}` : MAIL_ERRORS[code].reason);
    this.name = 'MailError';
    this.code = code;
    this.responseCode = responseCode;
  }
}

/** Result of `verifySmtp`. */
export type VerifyResult = { ok: true } | { ok: false; code: MailErrorCode; reason: string };

/** Answers to AUTH meaning "no such command here" or "not that mechanism", not "wrong password". */
const AUTH_UNAVAILABLE_REPLIES = [500, 502, 503, 504];

function classify(err: NodemailerError): MailErrorCode {
  if (err.command?.startsWith('AUTH') && err.responseCode !== undefined && AUTH_UNAVAILABLE_REPLIES.includes(err.responseCode)) return 'auth_unavailable';
  const entries = Object.entries(MAIL_ERRORS) as [MailErrorCode, (typeof MAIL_ERRORS)[MailErrorCode]][];
  const byReply = entries.find(([, e]) => err.responseCode !== undefined && (e.replies as readonly number[]).includes(err.responseCode));
  const byCode = (code: string | undefined) =>
    code === undefined ? undefined : entries.find(([, e]) => e.codes.some((c) => (typeof c === 'string' ? c === code : c.test(code))));
  return (byReply ?? byCode(err.originalCode) ?? byCode(err.code))?.[0] ?? 'unknown';
}

/**
 * Turns a nodemailer error into a MailError. The server's reply is kept because it often
 * names the real problem, but a server may echo what it got, so the password is masked
 * raw and in the base64 forms AUTH LOGIN and AUTH PLAIN send it in.
 */
function toMailError(err: unknown, settings: SmtpSettings): MailError {
  const e = (err instanceof Error ? err : new Error(String(err))) as NodemailerError;
  let detail = e.message.replace(new RegExp(CONTROL.source, 'g'), ' ');
  const { username = '', password } = settings;
  if (password !== undefined) {
    for (const secret of [Buffer.from(`\0${username}\0${password}`).toString('base64'), Buffer.from(password).toString('base64'), password]) {
      detail = detail.replaceAll(secret, '***');
    }
  }
  return new MailError(classify(e), detail.trim().slice(0, 300), e.responseCode);
}

function parseSettings(settings: SmtpSettingsInput): SmtpSettings {
  const parsed = SmtpSettings.safeParse(settings);
  if (!parsed.success) throw new MailError('invalid_settings', z.prettifyError(parsed.error).replace(/\n/g, ' '));
  return parsed.data;
}

function makeTransport(s: SmtpSettings): Transporter {
  return nodemailer.createTransport({
    host: s.host,
    port: s.port,
    secure: s.security === 'tls',
    requireTLS: s.security === 'starttls',
    ignoreTLS: s.security === 'none',
    auth: s.username !== undefined ? { user: s.username, pass: s.password } : undefined,
    // Without it nodemailer skips the login when the EHLO lists no AUTH and sends unauthenticated,
    // and verify() says all is well. With it the login is tried anyway, and the server's "500
    // command not recognized" (or 502/503/504) becomes auth_unavailable: nothing is sent. The
    // credentials only travel where they would have with AUTH advertised (after STARTTLS, when
    // required). Only with credentials: without, forceAuth would fail servers that offer AUTH.
    forceAuth: s.username !== undefined,
    // Node's `ca` replaces the built-in roots, so they are passed along to make tlsCa an addition.
    tls: s.tlsCa ? { ca: [...rootCertificates, s.tlsCa] } : undefined,
    // nodemailer waits up to 2 min to connect and 10 min on a silent socket; a request should fail fast.
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 15_000,
    dnsTimeout: 10_000,
    // We only send rendered strings: nodemailer must never read files or URLs on our behalf.
    disableFileAccess: true,
    disableUrlAccess: true,
  } satisfies SMTPTransportOptions);
}

/** Connects (and logs in, if configured) without sending anything; never throws. */
export async function verifySmtp(settings: SmtpSettingsInput): Promise<VerifyResult> {
  try {
    const s = parseSettings(settings);
    await makeTransport(s).verify().catch((err: unknown) => {
      throw toMailError(err, s);
    });
    return { ok: true };
  } catch (err) {
    const { code, message } = err as MailError;
    return { ok: false, code, reason: message };
  }
}

/** Sends one message and returns its Message-ID; throws MailError. */
export async function sendMail(settings: SmtpSettingsInput, mail: OutgoingMail): Promise<string> {
  const s = parseSettings(settings);
  const msg = OutgoingMail.safeParse(mail);
  if (!msg.success) throw new MailError('invalid_message', z.prettifyError(msg.error).replace(/\n/g, ' '));
  try {
    const info = await makeTransport(s).sendMail({ from: senderOf(s), ...msg.data });
    return info.messageId;
  } catch (err) {
    throw toMailError(err, s);
  }
}
