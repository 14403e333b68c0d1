/**
 * Renders the credentials, elevated, access-ended and request emails from Handlebars templates,
 * with admin overrides, validated variables and header-safe subjects.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { DateTime, IANAZone } from 'luxon';
import { z } from 'zod';
import { OPERATING_SYSTEMS } from '../protocol/groups.ts';

const DEFAULT_DIR = fileURLToPath(new URL('../templates/', import.meta.url));

/** C0, DEL, C1 and the Unicode line/paragraph separators: none may reach a header. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const singleLine = (max: number) => z.string().min(1).max(max).refine((s) => !CONTROL.test(s), 'must be a single line without control characters');

const common = {
  endpoint: singleLine(253),
  username: z.string().regex(/^[a-z][a-z0-9_-]{0,19}$/),
  email: z.email().refine((s) => !/[\r\n]/.test(s), 'must not contain line breaks'),
  /** Who sends this (the policy's `organisation`), so the mail does not look like phishing. */
  organisation: singleLine(100).optional(),
};

const SCHEMAS = {
  credentials: z.strictObject({
    ...common,
    os: z.enum(OPERATING_SYSTEMS),
    // Printable ASCII only: what the agent generates, and nothing that could break a line.
    password: z.string().regex(/^[\x21-\x7e]{8,128}$/, 'must be 8-128 printable ASCII characters'),
    start: z.date(),
    end: z.date(),
    /** Who asked for this access (the grant's creator). */
    requestedBy: singleLine(320).optional(),
    /** The name for `ssh user@host`: the endpoint's fully qualified name when known, else `endpoint`. */
    sshHost: z.hostname().optional(),
  }).refine((v) => v.start < v.end, { message: 'start must be before end', path: ['end'] }),
  'access-ended': z.strictObject({
    ...common,
    /** A temporary account's random name, or the person's own account (elevate-account). */
    username: singleLine(256),
    reason: z.enum(['expired', 'revoked']),
    end: z.date(),
    /** elevate-account: the group the account was in for the window (its own account is kept). */
    group: singleLine(50).optional(),
  }),
  /** elevate-account: the person's own account is in `group` until `end`; no password. */
  elevated: z.strictObject({
    ...common,
    username: singleLine(256),
    group: singleLine(50),
    start: z.date(),
    end: z.date(),
    /** At the end: `logoff` ends every session of the account, `notify` only the rights. */
    endAction: z.enum(['logoff', 'notify']),
    passwordlessSudo: z.boolean(),
    requestedBy: singleLine(320).optional(),
  }),
  /** An access request waits for `email`, an approver. */
  'request-pending': z.strictObject({
    email: common.email,
    organisation: common.organisation,
    endpoint: common.endpoint,
    requester: singleLine(320),
    account: singleLine(256).optional(),
    group: singleLine(50),
    minutes: z.number().int().positive(),
    /** The requester's reason (the body only: never a header). */
    why: z.string().max(500),
    rule: singleLine(100),
    requestId: singleLine(100),
    expires: z.date(),
    /** The request's page on the console, when the server knows its public address. */
    link: z.url().max(2000).optional(),
  }),
  /** The requester's request was approved (with the grant's window), denied (with the note) or expired. */
  'request-decided': z.strictObject({
    email: common.email,
    organisation: common.organisation,
    endpoint: common.endpoint,
    account: singleLine(256).optional(),
    group: singleLine(50),
    state: z.enum(['approved', 'denied', 'expired']),
    decidedBy: singleLine(320).optional(),
    note: z.string().max(500).optional(),
    start: z.date().optional(),
    end: z.date().optional(),
    requestId: singleLine(100),
    link: z.url().max(2000).optional(),
  }),
  /** "Test these settings" with a real message; `endpoint` names the sender (a host or "the server"). */
  'smtp-test': z.strictObject({
    endpoint: common.endpoint,
    email: common.email,
    organisation: common.organisation,
    sentAt: z.date(),
  }),
};

/** Which email to render. */
export type EmailKind = keyof typeof SCHEMAS;

/** The variables each email kind needs; dates are instants, formatted in `opts.timeZone`. */
export type EmailVars<K extends EmailKind> = z.input<(typeof SCHEMAS)[K]>;

/** A rendered email, ready for `sendMail`. */
export interface RenderedEmail {
  /** One line, guaranteed free of CR, LF and other control characters. */
  subject: string;
  html: string;
  text: string;
}

/** Options of `renderEmail`. */
export interface RenderOptions {
  /** A directory whose `<kind>.<part>.hbs` files replace the built-in ones, file by file. */
  overrideDir?: string;
  /** IANA zone the start/end times are shown in, e.g. 'Europe/Paris'. */
  timeZone: string;
}

// Keyed by resolved file path: each template is read and compiled once per process,
// so edits to override files take effect on restart.
const cache = new Map<string, Handlebars.TemplateDelegate>();

function template(kind: EmailKind, part: 'subject' | 'html' | 'text', overrideDir?: string): Handlebars.TemplateDelegate {
  const file = `${kind}.${part}.hbs`;
  const override = overrideDir === undefined ? undefined : path.resolve(overrideDir, file);
  const full = override !== undefined && existsSync(override) ? override : path.join(DEFAULT_DIR, file);
  let compiled = cache.get(full);
  if (!compiled) {
    let source = readFileSync(full, 'utf8');
    // Editors end files with a newline, which would otherwise end up in the subject and be refused.
    if (part === 'subject') source = source.replace(/\r?\n$/, '');
    // strict: a misspelt variable in an override fails loudly instead of mailing a blank password.
    compiled = Handlebars.compile(source, { strict: true, noEscape: part !== 'html' });
    cache.set(full, compiled);
  }
  return compiled;
}

/**
 * "Sat 21 Nov 2026, 14:05 CET", or "…, 17:36:56 CET" when the instant is not on a whole
 * minute: cutting the seconds would make an end read later than it is, and milliseconds
 * are dropped (rounded down) for the same reason. Intl knows a zone's letter abbreviation
 * only in some locales (CET in en-GB, EST in en-US), so both are tried before the offset.
 */
function formatInstant(date: Date, timeZone: string): string {
  const dt = DateTime.fromJSDate(date, { zone: timeZone }).setLocale('en-GB');
  const named = ['en-GB', 'en-US'].map((locale) => dt.setLocale(locale).toFormat('ZZZZ')).find((n) => /^[A-Z]+$/.test(n));
  const time = dt.second === 0 ? 'HH:mm' : 'HH:mm:ss';
  return `${dt.toFormat(`ccc d LLL yyyy, ${time}`)} ${named ?? `UTC${dt.toFormat('ZZ')}`}`;
}

/** Optional variables every template may test with {{#if}}: strict mode wants them present. */
const OPTIONAL: Record<EmailKind, string[]> = {
  credentials: ['organisation', 'requestedBy'],
  'access-ended': ['organisation', 'group'],
  elevated: ['organisation', 'requestedBy'],
  'smtp-test': ['organisation'],
  'request-pending': ['organisation', 'account', 'link'],
  'request-decided': ['organisation', 'account', 'decidedBy', 'note', 'start', 'end', 'link'],
};

/**
 * Renders one email. Throws if a variable is invalid, the time zone is unknown, a template
 * uses an unknown variable, or the rendered subject is not a single clean line.
 */
export function renderEmail<K extends EmailKind>(kind: K, vars: EmailVars<K>, opts: RenderOptions): RenderedEmail {
  const checked = SCHEMAS[kind].safeParse(vars);
  if (!checked.success) throw new Error(`invalid ${kind} email variables: ${z.prettifyError(checked.error)}`);
  if (!IANAZone.isValidZone(opts.timeZone)) {
    throw new Error(`unknown time zone ${JSON.stringify(opts.timeZone)}: expected an IANA name such as 'Europe/Paris' or 'UTC'`);
  }
  const v = checked.data;
  const data = {
    ...Object.fromEntries(OPTIONAL[kind].map((k) => [k, null])),
    ...('os' in v ? { sshHost: v.sshHost ?? v.endpoint } : {}),
    ...Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x instanceof Date ? formatInstant(x, opts.timeZone) : x])),
    // Plain booleans rather than a comparison helper, so override authors only need {{#if}}.
    ...('os' in v ? { windows: v.os === 'windows', macos: v.os === 'macos', linux: v.os === 'linux' } : {}),
    ...('reason' in v ? { expired: v.reason === 'expired', revoked: v.reason === 'revoked' } : {}),
    ...('endAction' in v ? { logoff: v.endAction === 'logoff' } : {}),
    ...('state' in v ? { approved: v.state === 'approved', denied: v.state === 'denied', expired: v.state === 'expired' } : {}),
  };
  const subject = template(kind, 'subject', opts.overrideDir)(data);
  if (subject.trim() === '' || CONTROL.test(subject)) {
    throw new Error(`the ${kind} subject template must render a single non-empty line without control characters`);
  }
  return {
    subject,
    html: template(kind, 'html', opts.overrideDir)(data),
    text: template(kind, 'text', opts.overrideDir)(data),
  };
}
