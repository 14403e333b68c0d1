/**
 * The simulated Mac's pwpolicy (account policies, -authentication-allowed) and the file tools
 * the backend runs (createhomedir, stat, find, rm, chflags): functions over the FakeMac model.
 * ⚠️ marks behaviour taken from documentation or third-party tools, not seen on a Mac.
 */
import { readFileSync } from 'node:fs';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { FakeMac, Out } from './fakeMac.ts';

export const DISABLED = ';DisabledUser;';
export const NO_TOKEN = ';DisabledTags;SecureToken';
export const TOKEN = ';SecureToken;';
export const SHADOW = ';ShadowHash;HASHLIST:<SALTED-SHA512-PBKDF2,SRP-RFC5054-4096-SHA512-PBKDF2>';

export interface AuthPolicy {
  id: string;
  content: string;
  params: Record<string, unknown>;
}

/** The file tools, by path: createhomedir, stat, find, rm, chflags. */
export const FILE_TOOLS: Record<string, (mac: FakeMac, file: string, a: string[]) => Out> = {
  '/usr/sbin/createhomedir': createhomedir,
  '/usr/bin/stat': stat,
  '/usr/bin/find': find,
  '/bin/rm': rm,
  '/usr/bin/chflags': chflags,
};

// ⚠️ pwpolicy's exit status and messages (Salt's mac_shadow: "Error: user <NAME> not found").
export function pwpolicy(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length < 5 || a[0] !== '-u' || a[2] !== '-n' || a[3] !== '/Local/Default') return mac.unknown(file, a);
  const [name, command, rest] = [a[1]!, a[4]!, a.slice(5)];
  const u = mac.users.get(name);
  if (!u) return { code: 1, stderr: `Error: user <${name}> not found\n` };
  const writes = !['-getaccountpolicies', '-authentication-allowed'].includes(command);
  if (mac.faults.notRoot && writes) return { code: 1, stderr: 'Permission denied\n' };
  const auth = u.attrs.get('AuthenticationAuthority') ?? [];
  // ⚠️ Modelled pessimistically: pwpolicy refuses a record that has no uid yet.
  if (writes && !u.attrs.has('UniqueID')) return { code: 1, stderr: `Error: user <${name}> has no UniqueID\n` };
  if (command === '-disableuser' && !rest.length) {
    if (!mac.faults.disableuserIgnored && !auth.includes(DISABLED)) u.attrs.set('AuthenticationAuthority', [...auth, DISABLED]);
    return { code: 0 };
  }
  if (command === '-enableuser' && !rest.length) {
    if (!mac.faults.enableuserKeepsTag) u.attrs.set('AuthenticationAuthority', auth.filter((v) => v !== DISABLED));
    return { code: 0 };
  }
  // The deprecated, day-granular form the backend used before: kept so the expiry test shows
  // what it would let through (and that it is no longer used).
  if (command === '-setpolicy' && rest.length === 1) {
    if (!mac.faults.setpolicyIgnored) {
      for (const word of rest[0]!.split(' ')) {
        const m = /^(\w+)=(\S+)$/.exec(word);
        if (!m) return { code: 1, stderr: `invalid policy ${word}\n` };
        u.legacyPolicy.set(m[1]!, m[2]!);
      }
    }
    return { code: 0 };
  }
  if (command === '-setaccountpolicies' && rest.length === 1) {
    // "Takes one argument: the name of the file containing the policies" (pwpolicy(8)).
    let policies: AuthPolicy[];
    try {
      policies = readAccountPolicies(readFileSync(rest[0]!, 'utf8'));
    } catch (e) {
      return { code: 1, stderr: `Error reading policies from ${rest[0]}: ${(e as Error).message}\n` };
    }
    if (!mac.faults.setpolicyIgnored) u.accountPolicies = policies; // "Sets (replaces)"
    return { code: 0 };
  }
  if (command === '-getaccountpolicies' && !rest.length) {
    // ⚠️ A line of text, then the plist (CIS/STIG checks drop it with `tail -n +2`).
    return { code: 0, stdout: `Getting account policies for user <${name}>\n${accountPoliciesPlist(u.accountPolicies ?? [])}` };
  }
  if (command === '-authentication-allowed' && !rest.length) {
    // ⚠️ Output and exit status are this model's convention; the man page only names the command.
    return authenticationAllowed(mac, name) ? { code: 0, stdout: 'Policy allows user to authenticate\n' } : { code: 1, stdout: 'Policy does not allow user to authenticate\n' };
  }
  return mac.unknown(file, a);
}

/** What pwpolicy -authentication-allowed answers at `now` ⚠️ (DisabledUser, legacy and account policies). */
export function authenticationAllowed(mac: FakeMac, name: string): boolean {
  const u = mac.users.get(name);
  if (!u || mac.disabled(name)) return false;
  const hard = u.legacyPolicy.get('hardExpireDateGMT');
  if (u.legacyPolicy.get('usingHardExpirationDate') === '1' && hard) {
    // pwpolicy(8), legacy: "user's account is disabled on the date" — from 00:00 GMT of it.
    const [mm, dd, yy] = hard.split('/').map(Number) as [number, number, number];
    if (mac.now >= Date.UTC(yy < 100 ? 2000 + yy : yy, mm - 1, dd)) return false;
  }
  for (const p of u.accountPolicies ?? []) {
    const m = /^\s*policyAttributeCurrentTime\s*<\s*(\w+)\s*$/.exec(p.content);
    const limit = m ? (/^\d+$/.test(m[1]!) ? Number(m[1]) : p.params[m[1]!]) : undefined;
    if (typeof limit !== 'number') {
      mac.unmodelled.push(`policy content: ${p.content}`);
      return false;
    }
    if (!(mac.now / 1000 < limit)) return false;
  }
  return true;
}

/** ⚠️ createhomedir(8) -c -u NAME: the home at NFSHomeDirectory from the template, owned by the account. */
function createhomedir(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 3 || a[0] !== '-c' || a[1] !== '-u') return mac.unknown(file, a);
  const name = a[2]!;
  const uid = mac.uidOf(name);
  const home = mac.attr(name, 'NFSHomeDirectory');
  if (mac.faults.notRoot) return { code: 1, stderr: 'createhomedir: must be run as root\n' };
  if (uid === undefined || !home) return { code: 0, stdout: '' }; // ⚠️ silently nothing for an incomplete record
  if (!mac.fs.has(home)) {
    mac.mkdir(home, uid);
    for (const d of ['Library', 'Desktop', 'Documents']) mac.mkdir(`${home}/${d}`, uid);
  }
  return { code: 0, stdout: `created ${home}\n` };
}

/** BSD stat -f FORMAT (lstat: a symlink is reported as itself). Only %u and %HT are modelled. */
function stat(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 3 || a[0] !== '-f' || a[1] !== '%u:%HT') return mac.unknown(file, a);
  const e = mac.fs.get(a[2]!);
  return e ? { code: 0, stdout: `${e.uid}:${e.type}\n` } : { code: 1, stderr: `stat: ${a[2]}: stat: No such file or directory\n` };
}

/** BSD find -x ROOT… -user UID -delete|-print: no symlink is followed (-P, the default). */
function find(mac: FakeMac, file: string, a: string[]): Out {
  const action = a.at(-1);
  const userAt = a.indexOf('-user');
  if (a[0] !== '-x' || userAt < 2 || userAt !== a.length - 3 || (action !== '-delete' && action !== '-print')) return mac.unknown(file, a);
  const roots = a.slice(1, userAt);
  if (!/^\d+$/.test(a[userAt + 1]!)) return mac.unknown(file, a);
  const uid = Number(a[userAt + 1]);
  const foreign = (p: string, root: string) => [...mac.mounts].some((m) => m !== root && m.startsWith(`${root}/`) && (p === m || p.startsWith(`${m}/`)));
  const hits = roots.flatMap((r) => (mac.fs.has(r) ? mac.under(r).filter((p) => !foreign(p, r)) : [])).filter((p) => mac.fs.get(p)!.uid === uid);
  if (action === '-print') return { code: 0, stdout: hits.map((p) => `${p}\n`).join('') };
  const err: string[] = [];
  for (const p of hits.sort((x, y) => y.length - x.length)) {
    const e = mac.fs.get(p)!;
    if (e.uchg || mac.faults.rmFails.has(p)) err.push(`find: -delete: ${p}: Operation not permitted\n`);
    else if (mac.under(p).length > 1) err.push(`find: -delete: ${p}: Directory not empty\n`);
    else mac.fs.delete(p);
  }
  return { code: err.length ? 1 : 0, stderr: err.join('') };
}

function rm(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 2 || (a[0] !== '-rf' && a[0] !== '-f') || !a[1]!.startsWith('/')) return mac.unknown(file, a);
  const p = a[1]!;
  if (a[0] === '-f') {
    const e = mac.fs.get(p);
    if (e?.type === 'Directory') return { code: 1, stderr: `rm: ${p}: is a directory\n` };
    if (e && (e.uchg || mac.faults.rmFails.has(p))) return { code: 1, stderr: `rm: ${p}: Operation not permitted\n` };
    mac.fs.delete(p);
    return { code: 0 };
  }
  const err: string[] = [];
  for (const q of mac.under(p).sort((x, y) => y.length - x.length)) {
    if (mac.fs.get(q)!.uchg || mac.faults.rmFails.has(q)) err.push(`rm: ${q}: Operation not permitted\n`);
    else if (mac.under(q).length > 1) err.push(`rm: ${q}: Directory not empty\n`);
    else mac.fs.delete(q);
  }
  return { code: err.length ? 1 : 0, stderr: err.join('') };
}

/** chflags -R nouchg PATH (no symlink followed, the -P default). */
function chflags(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 3 || a[0] !== '-R' || a[1] !== 'nouchg') return mac.unknown(file, a);
  if (!mac.fs.has(a[2]!)) return { code: 1, stderr: `chflags: ${a[2]}: No such file or directory\n` };
  for (const q of mac.under(a[2]!)) delete mac.fs.get(q)!.uchg;
  return { code: 0 };
}

// ------------------------------------------------------------------ account-policy plists

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n';

/**
 * An account-policy file as pwpolicy would need it: well-formed XML (fast-xml-parser's
 * validator), a plist dict of policy categories, each an array of policy dicts with string
 * policyContent and policyIdentifier and an optional policyParameters dict. Only the
 * authentication category is kept (the backend sets no other).
 */
export function readAccountPolicies(xml: string): AuthPolicy[] {
  const top = readPlistXml(xml);
  if (!isObj(top)) throw new Error('the plist is not a dict');
  const known = ['policyCategoryAuthentication', 'policyCategoryPasswordContent', 'policyCategoryPasswordChange'];
  for (const k of Object.keys(top)) if (!known.includes(k)) throw new Error(`unknown policy category ${k}`);
  const auth = top.policyCategoryAuthentication ?? [];
  if (!Array.isArray(auth)) throw new Error('policyCategoryAuthentication is not an array');
  return auth.map((p) => {
    if (!isObj(p) || typeof p.policyContent !== 'string' || typeof p.policyIdentifier !== 'string') throw new Error('a policy lacks policyContent or policyIdentifier');
    const params = p.policyParameters ?? {};
    if (!isObj(params)) throw new Error('policyParameters is not a dict');
    for (const k of Object.keys(p)) if (!['policyContent', 'policyIdentifier', 'policyParameters', 'policyContentDescription'].includes(k)) throw new Error(`unknown policy key ${k}`);
    return { id: p.policyIdentifier, content: p.policyContent, params };
  });
}

/**
 * Any XML plist as launchd or pwpolicy would need it: well-formed (fast-xml-parser's validator),
 * one value in <plist> of string, integer, true, false, array or dict (a <key> before each value).
 * Throws on anything else.
 */
export function readPlistXml(xml: string): unknown {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new Error(`not well-formed XML: ${valid.err.msg}`);
  const doc = new XMLParser({ preserveOrder: true, ignoreDeclaration: true, ignoreAttributes: true, parseTagValue: false, trimValues: false }).parse(xml) as Node[];
  const root = doc.find((n) => 'plist' in n);
  if (!root) throw new Error('no <plist>');
  const values = elements(root.plist as Node[]);
  if (values.length !== 1) throw new Error('<plist> must hold exactly one value');
  return plistValue(values[0]);
}

type Node = Record<string, unknown>;
export const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Element nodes of a preserveOrder list (whitespace text dropped). */
const elements = (nodes: Node[]): Node[] => nodes.filter((n) => !('#text' in n) || String(n['#text']).trim() !== '');
const textOf = (n: Node, tag: string): string => ((n[tag] as Node[])[0]?.['#text'] as string | undefined) ?? '';

function plistValue(n: Node | undefined): unknown {
  if (!n) throw new Error('missing value');
  const tag = Object.keys(n).find((k) => k !== ':@')!;
  const kids = elements(n[tag] as Node[]);
  switch (tag) {
    case 'string':
      return textOf(n, tag);
    case 'integer':
      if (!/^-?\d+$/.test(textOf(n, tag))) throw new Error(`bad integer ${textOf(n, tag)}`);
      return Number(textOf(n, tag));
    case 'true':
    case 'false':
      return tag === 'true';
    case 'array':
      return kids.map(plistValue);
    case 'dict': {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < kids.length; i += 2) {
        if (!('key' in kids[i]!)) throw new Error('dict entry without <key>');
        out[textOf(kids[i]!, 'key')] = plistValue(kids[i + 1]);
      }
      return out;
    }
  }
  throw new Error(`unexpected <${tag}>`);
}

/** What pwpolicy -getaccountpolicies prints after its first line. */
function accountPoliciesPlist(policies: AuthPolicy[]): string {
  const param = (k: string, v: unknown) => `\t\t\t\t<key>${esc(k)}</key>\n\t\t\t\t${typeof v === 'number' ? `<integer>${v}</integer>` : `<string>${esc(String(v))}</string>`}\n`;
  const one = (p: AuthPolicy) =>
    `\t\t<dict>\n\t\t\t<key>policyContent</key>\n\t\t\t<string>${esc(p.content)}</string>\n\t\t\t<key>policyIdentifier</key>\n\t\t\t<string>${esc(p.id)}</string>\n` +
    `\t\t\t<key>policyParameters</key>\n\t\t\t<dict>\n${Object.entries(p.params).map(([k, v]) => param(k, v)).join('')}\t\t\t</dict>\n\t\t</dict>\n`;
  return `${HEAD}<dict>\n\t<key>policyCategoryAuthentication</key>\n\t<array>\n${policies.map(one).join('')}\t</array>\n</dict>\n</plist>\n`;
}
