/**
 * SMTP settings as admins type them and mail servers need them: the host, the
 * sender (with a display name), an extra CA that must really be a certificate.
 * No nodemailer here, so validating settings stays cheap.
 */
import { X509Certificate } from 'node:crypto';
import { isIP, isIPv4 } from 'node:net';
import { IANAZone } from 'luxon';
import { z } from 'zod';

/** C0, DEL, C1 and the Unicode line/paragraph separators: none may reach a header. */
export const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** Why `host` is not usable, or null. */
export function hostProblem(h: string): string | null {
  if (isIP(h) !== 0) return null;
  // Digits and dots only: meant as an IPv4 address, and "999.1.1.1" is not one (nor a host name).
  if (/^[\d.]+$/.test(h)) return isIPv4(h) ? null : `${h} is not a valid IPv4 address (four numbers of 0-255)`;
  // localhost: a stock Debian postfix's certificate names only that.
  if (h === 'localhost') return null;
  const labels = h.replace(/\.$/, '').split('.');
  if (!z.hostname().safeParse(h).success || labels.length < 2) return 'must be a fully qualified host name, localhost or an IP address';
  // RFC 3696 §2: a top-level label is never all digits.
  if (/^\d+$/.test(labels.at(-1)!)) return 'must be a fully qualified host name, localhost or an IP address';
  return null;
}

const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** local@domain, where the domain may be a single label (`jit@corp`, `root@localhost`). */
function isAddress(a: string): boolean {
  const at = a.lastIndexOf('@');
  if (at < 1 || a.length > 254) return false;
  const [local, domain] = [a.slice(0, at), a.slice(at + 1)];
  return local.length <= 64 && LOCAL_PART.test(local) && domain.length <= 253 && domain.split('.').every((l) => LABEL.test(l));
}

/** A sender: the address, and the display name when one was given. */
export interface Sender {
  name?: string;
  address: string;
}

/**
 * Reads `jit@corp`, `<jit@corp>`, `JIT Access <jit@corp>` or `"IT, Corp" <jit@corp>`.
 * Null when it is none of those or holds a line break or another control character.
 * The name goes to nodemailer separately, which quotes or encodes it as the header needs.
 */
export function parseSender(from: string): Sender | null {
  if (CONTROL.test(from)) return null;
  const s = from.trim();
  const m = /^(?:"((?:[^"\\]|\\.)*)"|([^"<>]*?))\s*<([^<>\s]+)>$/.exec(s);
  if (!m) return isAddress(s) ? { address: s } : null;
  const [, quoted, plain, address] = m;
  if (!isAddress(address!)) return null;
  const name = (quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : plain!).trim();
  if (name.length > 100) return null;
  return name ? { name, address: address! } : { address: address! };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Why `pem` is not a usable CA (one certificate or a bundle of them), or null. Each
 * block is parsed with node's X509Certificate, so the admin hears now rather than
 * at the first failed handshake. Text between blocks (comments, openssl's subject=
 * lines) is allowed; other PEM blocks, a private key say, are not.
 */
export function caProblem(pem: string): string | null {
  if (pem === '') return null;
  const other = /-----BEGIN ((?!CERTIFICATE-----)[A-Z0-9 ]+)-----/.exec(pem);
  if (other) return `holds a ${other[1]}, not only certificates: paste the CA certificate(s) alone`;
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) return 'must be a PEM certificate (-----BEGIN CERTIFICATE----- …)';
  if ((pem.match(/-----BEGIN /g) ?? []).length !== blocks.length) return 'a certificate has no -----END CERTIFICATE----- line';
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `certificate ${i + 1} of ${blocks.length} cannot be read: ${(err as Error).message}`;
    }
  }
  return null;
}

/** A zod check from a "why not" function. */
const checked = (problem: (s: string) => string | null) =>
  z.string().superRefine((s, ctx) => {
    const p = problem(s);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  });

/** SMTP settings, from an Agent Settings policy (agent side) or the server configuration. */
export const SmtpSettings = z.object({
  /** A fully qualified host name, localhost, or an IP address. */
  host: checked(hostProblem),
  port: z.int().min(1).max(65535),
  /** 'starttls' (submission, 587), 'tls' (implicit TLS, 465) or 'none' (plain text, lab only). */
  security: z.enum(['starttls', 'tls', 'none']),
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  /** The sender, optionally with a display name: `JIT Access <jit@corp.example>`. */
  from: checked((s) => (parseSender(s) ? null : 'must be an address, optionally with a display name (JIT Access <jit@corp.example>), on one line')),
  /** Shown in every email and in the default sender name, so the mail does not look like phishing. */
  organisation: z.string().min(1).max(100).refine((s) => !CONTROL.test(s), 'must be a single line without control characters').optional(),
  /** IANA zone the emails show times in. */
  timeZone: z.string().refine((tz) => IANAZone.isValidZone(tz), 'must be an IANA time zone such as Europe/Paris').default('UTC'),
  /** PEM of an extra CA (or a bundle) to trust, for servers with a private CA; empty in the usual case. */
  tlsCa: checked(caProblem).optional(),
}).refine((s) => (s.username === undefined) === (s.password === undefined), {
  message: 'username and password go together',
  path: ['password'],
});
/** Parsed SMTP settings (time zone defaulted). */
export type SmtpSettings = z.output<typeof SmtpSettings>;
/** SMTP settings as stored or typed in: `timeZone` may be left out. */
export type SmtpSettingsInput = z.input<typeof SmtpSettings>;

/** The From header: the configured display name, else one naming the service (and the organisation). */
export function senderOf(s: Pick<SmtpSettings, 'from' | 'organisation'>): Required<Sender> {
  const parsed = parseSender(s.from);
  if (!parsed) throw new Error('invalid sender'); // parseSettings has checked it already
  return { address: parsed.address, name: parsed.name ?? (s.organisation ? `${s.organisation} JIT Access` : 'JIT Access') };
}
