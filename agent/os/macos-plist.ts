/**
 * Property lists for the macOS backend: dscl's `-plist` answers, and the account policy that is
 * the hard-expiry backstop (`pwpolicy -setaccountpolicies` / `-getaccountpolicies`).
 */
import { AccountError } from './backend.ts';

/** A plist value as this module reads it (data and date come back as their text). */
export type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

/**
 * Attributes from `dscl -plist . -read`: a dict of key → array of strings. Keys come as
 * dsAttrTypeStandard:Name / dsAttrTypeNative:Name (⚠️ as Chef's provider reads them); the
 * prefix is dropped. Anything else in the dict is an error: better to stop than to misread.
 */
export function parseDsclPlist(xml: string): Map<string, string[]> {
  const dict = /<plist[^>]*>\s*<dict>([\s\S]*?)<\/dict>\s*<\/plist>/.exec(xml);
  if (!dict) throw new AccountError('COMMAND_FAILED', 'dscl gave no plist');
  const attrs = new Map<string, string[]>();
  const entry = /<key>([^<]*)<\/key>\s*(?:<array>((?:\s*<string>[^<]*<\/string>)*)\s*<\/array>|<array\/>|<string>([^<]*)<\/string>)/g;
  const rest = dict[1]!.replace(entry, (_m, key: string, arr: string | undefined, one: string | undefined) => {
    const values = arr !== undefined ? [...arr.matchAll(/<string>([^<]*)<\/string>/g)].map((m) => m[1]!) : one !== undefined ? [one] : [];
    attrs.set(xmlText(key).replace(/^dsAttrType(?:Standard|Native):/, ''), values.map(xmlText));
    return '';
  });
  if (rest.trim()) throw new AccountError('COMMAND_FAILED', 'unexpected content in dscl plist');
  return attrs;
}

export function xmlText(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_m, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1))) : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!,
  );
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A whole XML plist of `value`, tab-indented as Apple's tools write it. Strings are escaped (&, <,
 * >) and otherwise kept as they are, newlines included; numbers must be integers.
 */
export function plistXml(value: PlistValue): string {
  const out = (v: PlistValue, indent: string): string => {
    if (typeof v === 'string') return `${indent}<string>${xmlEscape(v)}</string>\n`;
    if (typeof v === 'boolean') return `${indent}<${v}/>\n`;
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new AccountError('COMMAND_FAILED', `not an integer: ${v}`);
      return `${indent}<integer>${v}</integer>\n`;
    }
    if (Array.isArray(v)) return `${indent}<array>\n${v.map((x) => out(x, `${indent}\t`)).join('')}${indent}</array>\n`;
    const entries = Object.entries(v).map(([k, x]) => `${indent}\t<key>${xmlEscape(k)}</key>\n${out(x, `${indent}\t`)}`);
    return `${indent}<dict>\n${entries.join('')}${indent}</dict>\n`;
  };
  return `${PLIST_HEAD}${out(value, '')}</plist>\n`;
}

const PLIST_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n';

/**
 * A whole XML plist, strictly: dict, array, string, integer, real, true, false, date, data.
 * Anything it does not know (or text outside the plist) is an error, never skipped.
 */
export function parsePlist(xml: string): PlistValue {
  const body = /<plist[^>]*>([\s\S]*)<\/plist>\s*$/.exec(xml.trim());
  if (!body) throw new AccountError('COMMAND_FAILED', 'no plist in the answer');
  const bad = (what: string): never => {
    throw new AccountError('COMMAND_FAILED', `unexpected plist content: ${what}`);
  };
  // Tags and the text between them; anything else (comments, attributes, stray '<') is an error.
  type Token = { text: string } | { tag: string; close: boolean; empty: boolean };
  const tokens: Token[] = [];
  const scan = /<(\/?)([A-Za-z]+)\s*(\/?)>|([^<]+)/y;
  for (let m; scan.lastIndex < body[1]!.length; ) {
    if (!(m = scan.exec(body[1]!))) return bad(body[1]!.slice(scan.lastIndex, scan.lastIndex + 20));
    tokens.push(m[4] !== undefined ? { text: m[4] } : { tag: m[2]!, close: m[1] === '/', empty: m[3] === '/' });
  }
  let i = 0;
  // Whitespace between elements means nothing; inside <string> it is kept (see textUntil).
  const next = (): Token | undefined => {
    while (tokens[i] && 'text' in tokens[i]! && !(tokens[i] as { text: string }).text.trim()) i++;
    return tokens[i];
  };
  const textUntil = (tag: string): string => {
    const t = tokens[i];
    const text = t && 'text' in t ? (i++, t.text) : '';
    const end = tokens[i++];
    if (!end || 'text' in end || !end.close || end.tag !== tag) bad(`<${tag}> not closed`);
    return xmlText(text);
  };
  const isClose = (tag: string): boolean => {
    const t = next();
    if (!t) bad(`<${tag}> not closed`);
    return !('text' in t!) && t!.close && t!.tag === tag;
  };
  const value = (): PlistValue => {
    const t = next();
    i++;
    if (!t || 'text' in t || t.close) return bad('a value was expected');
    if (t.empty) {
      if (t.tag === 'true' || t.tag === 'false') return t.tag === 'true';
      if (t.tag === 'dict') return Object.create(null) as { [key: string]: PlistValue };
      if (t.tag === 'array') return [];
      if (t.tag === 'string') return '';
      return bad(`<${t.tag}/>`);
    }
    switch (t.tag) {
      case 'string':
      case 'date':
      case 'data':
        return textUntil(t.tag);
      case 'integer':
      case 'real': {
        const s = textUntil(t.tag).trim();
        if (!(t.tag === 'integer' ? /^-?\d+$/ : /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/).test(s)) bad(`<${t.tag}>${s}`);
        return Number(s);
      }
      case 'array': {
        const out: PlistValue[] = [];
        while (!isClose('array')) out.push(value());
        i++;
        return out;
      }
      case 'dict': {
        // No prototype: a key named __proto__ is a key like any other.
        const out = Object.create(null) as { [key: string]: PlistValue };
        while (!isClose('dict')) {
          const k = next();
          i++;
          if (!k || 'text' in k || k.tag !== 'key' || k.close || k.empty) bad('a <key> was expected');
          const key = textUntil('key');
          if (Object.hasOwn(out, key)) bad(`key ${key} twice`);
          out[key] = value();
        }
        i++;
        return out;
      }
    }
    return bad(`<${t.tag}>`);
  };
  const v = value();
  if (next() !== undefined) bad('more than one top-level value');
  return v;
}

// ---------------------------------------------------------------------------------------------
// The hard-expiry backstop as an account policy
// ---------------------------------------------------------------------------------------------

/** Our policy's identifier in the account's policy set. */
export const EXPIRY_POLICY_ID = 'com.jit-access.hard-expiry';
/**
 * The policy parameter that holds the instant, in seconds since the Unix epoch: the unit of
 * policyAttributeCurrentTime (OpenDirectory's kODPolicyAttributeCurrentTime: "the current date
 * and time in seconds since the Unix epoch"). A parameter of our own naming, as Apple's own
 * lockout policy does with autoEnableInSeconds ⚠️.
 */
export const EXPIRY_PARAMETER = 'jitAccessExpiresAtEpochSeconds';
/** Authentications are allowed while this holds (pwpolicy(8): policyCategoryAuthentication). */
export const EXPIRY_CONTENT = `policyAttributeCurrentTime < ${EXPIRY_PARAMETER}`;

/**
 * The instant as whole epoch seconds, rounded UP: the backstop may fire up to a second late,
 * never early (the agent itself ends access on time).
 */
export function expiryEpochSeconds(expiresAt: Date): number {
  const t = expiresAt.getTime();
  if (!Number.isFinite(t) || t <= 0) throw new AccountError('COMMAND_FAILED', 'invalid expiry date');
  return Math.ceil(t / 1000);
}

/**
 * The account-policy plist for `pwpolicy -setaccountpolicies`: one authentication policy,
 * "current time < the exact expiry instant". It replaces every policy the account had; ours
 * never have others.
 */
export function expiryPolicyPlist(expiresAt: Date): string {
  const epoch = expiryEpochSeconds(expiresAt);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    '\t<key>policyCategoryAuthentication</key>',
    '\t<array>',
    '\t\t<dict>',
    '\t\t\t<key>policyContent</key>',
    `\t\t\t<string>${xmlEscape(EXPIRY_CONTENT)}</string>`,
    '\t\t\t<key>policyIdentifier</key>',
    `\t\t\t<string>${xmlEscape(EXPIRY_POLICY_ID)}</string>`,
    '\t\t\t<key>policyParameters</key>',
    '\t\t\t<dict>',
    `\t\t\t\t<key>${EXPIRY_PARAMETER}</key>`,
    `\t\t\t\t<integer>${epoch}</integer>`,
    '\t\t\t</dict>',
    '\t\t</dict>',
    '\t</array>',
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

/**
 * The expiry instant (epoch seconds) our policy carries in a `pwpolicy -getaccountpolicies`
 * answer, or null when it is not there exactly as we wrote it. ⚠️ The answer starts with a
 * line of text before the XML (as CIS/STIG checks read it with `tail -n +2`).
 */
export function policyExpiry(answer: string): number | null {
  const start = answer.search(/<\?xml|<plist/);
  if (start < 0) return null;
  const root = parsePlist(answer.slice(start));
  const auth = isDict(root) ? root.policyCategoryAuthentication : undefined;
  if (!Array.isArray(auth)) return null;
  for (const p of auth) {
    if (!isDict(p) || p.policyIdentifier !== EXPIRY_POLICY_ID) continue;
    const params = p.policyParameters;
    const epoch = isDict(params) ? params[EXPIRY_PARAMETER] : undefined;
    return p.policyContent === EXPIRY_CONTENT && typeof epoch === 'number' ? epoch : null;
  }
  return null;
}

function isDict(v: PlistValue | undefined): v is { [key: string]: PlistValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
