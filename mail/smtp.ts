/**
 * Sending mail over SMTP with nodemailer: validated settings, one table of
 * stable error codes, and error texts that never carry the password.
 */
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import nodemailer from 'nodemailer';
import type { NodemailerError, SMTPTransportOptions, Transporter } from 'nodemailer';
import { IANAZone } from 'luxon';
import { z } from 'zod';

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const email = z.email().refine((s) => !/[\r\n]/.test(s), 'must not contain line breaks');

/** SMTP settings, from an Agent Settings policy (agent side) or the server configuration. */
export const SmtpSettings = z.object({
  /** A fully qualified host name (at least one dot) or an IP address. */
  host: z.string().refine((h) => isIP(h) !== 0 || (z.hostname().safeParse(h).success && h.includes('.')), 'must be a fully qualified host name or an IP address'),
  port: z.int().min(1).max(65535),
  /** 'starttls' (submission, 587), 'tls' (implicit TLS, 465) or 'none' (plain text, lab only). */
  security: z.enum(['starttls', 'tls', 'none']),
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  from: email,
  /** IANA zone the emails show times in. */
  timeZone: z.string().refine((tz) => IANAZone.isValidZone(tz), 'must be an IANA time zone such as Europe/Paris').default('UTC'),
  /** PEM of an extra CA to trust, for servers with a private CA; empty in the usual case. */
  tlsCa: z.string().refine((s) => s === '' || s.includes('-----BEGIN CERTIFICATE-----'), 'must be a PEM certificate').optional(),
}).refine((s) => (s.username === undefined) === (s.password === undefined), {
  message: 'username and password go together',
  path: ['password'],
});
/** Parsed SMTP settings (time zone defaulted). */
export type SmtpSettings = z.output<typeof SmtpSettings>;
/** SMTP settings as stored or typed in: `timeZone` may be left out. */
export type SmtpSettingsInput = z.input<typeof SmtpSettings>;

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

function classify(err: NodemailerError): MailErrorCode {
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
    const info = await makeTransport(s).sendMail({ from: s.from, ...msg.data });
    return info.messageId;
  } catch (err) {
    throw toMailError(err, s);
  }
}
