/**
 * The simulated Mac's dscl: record reads, -list, -create/-append/-delete, and the command mode
 * that sets passwords from stdin; the other directory tools, sysadminctl -deleteUser and
 * dseditgroup. Functions over the FakeMac model; ⚠️ marks behaviour taken
 * from Apple's 10.5-era DSTools sources or third-party tools, not seen on a Mac.
 */
import assert from 'node:assert/strict';
import type { FakeMac, FakeUser, Out } from './fakeMac.ts';
import { DISABLED, NO_TOKEN, SHADOW, TOKEN } from './fakeMacTools.ts';

// ⚠️ dscl's exit status is -(DS status) truncated to 8 bits: -14136 → 56, -14120 → 40 (DSTools source).
export const NOT_FOUND: Out = { code: 56, stderr: '<dscl_cmd> DS Error: -14136 (eDSRecordNotFound)\n' };
export const DENIED: Out = { code: 40, stderr: '<dscl_cmd> DS Error: -14120 (eDSPermissionError)\n' };

function record(mac: FakeMac, recPath: string): Map<string, string[]> | null {
  const [, kind, name] = /^\/(Users|Groups)\/([^/]+)$/.exec(recPath) ?? [];
  if (kind === 'Users') {
    const u = mac.users.get(name!);
    return u ? new Map([['RecordName', [name!]], ...u.attrs]) : null;
  }
  const g = kind === 'Groups' ? mac.groups.get(name!) : undefined;
  if (!g) return null;
  const attrs = new Map([['RecordName', [name!]], ['PrimaryGroupID', [String(g.gid)]]]);
  if (g.members.size) attrs.set('GroupMembership', [...g.members]); // ⚠️ no members = no key
  return attrs;
}

export function dscl(mac: FakeMac, file: string, a: string[]): Out {
  if (a[0] === '-plist' && a[1] === '.' && a[2] === '-read' && a.length >= 4) {
    if (mac.faults.readFails) return { code: 70, stderr: 'Operation failed with error: eServerNotRunning\n' };
    const attrs = record(mac, a[3]!);
    if (!attrs) return NOT_FOUND;
    const keys = a.slice(4);
    // ⚠️ A requested key the record lacks: "No such key: K" and exit 0 (Chef's provider).
    const noKey = keys.filter((k) => !attrs.has(k)).map((k) => `No such key: ${k}\n`).join('');
    const present = keys.filter((k) => attrs.has(k));
    return present.length ? { code: 0, stdout: plist(present.map((k) => [k, attrs.get(k)!])), stderr: noKey } : { code: 0, stdout: noKey };
  }
  if (a[0] !== '.') return mac.unknown(file, a);
  const [cmd, recPath, key, ...values] = a.slice(1) as [string, string | undefined, string | undefined, ...string[]];
  if (cmd === '-readpl' && a.length === 5 && key === 'accountPolicyData' && values[0] === 'passwordLastSetTime') {
    const u = mac.users.get(recPath!.replace(/^\/Users\//, ''));
    if (!u) return NOT_FOUND;
    // ⚠️ Output "key: value" (Salt's mac_shadow); missing key: an error and a non-zero exit.
    return u.passwordSetAt === undefined ? { code: 1, stderr: 'No such plist path: passwordLastSetTime\n' } : { code: 0, stdout: `passwordLastSetTime: ${u.passwordSetAt}\n` };
  }
  if (cmd === '-list' && a.length === 4) {
    // ⚠️ "-list path key": one line per record, the name then the key's values; none: the name alone.
    if (recPath === '/Users' && key === 'UniqueID') {
      return { code: 0, stdout: [...mac.users].map(([n, u]) => [n, ...(u.attrs.get('UniqueID') ?? [])].join('\t\t')).join('\n') + '\n' };
    }
    if (recPath === '/Groups' && key === 'GroupMembership') {
      return { code: 0, stdout: [...mac.groups].map(([n, g]) => [n, ...g.members].join(' ')).join('\n') + '\n' };
    }
  }
  const [, kind, name] = /^\/(Users|Groups)\/([^/]+)$/.exec(recPath ?? '') ?? [];
  if (!kind) return mac.unknown(file, a);
  if (mac.faults.notRoot && cmd !== '-read') return DENIED;
  if (cmd === '-create' && kind === 'Users') {
    // DSTools createRecord: createAndCd makes the record if it is missing (an existing one is
    // fine: eDSRecordAlreadyExists counts as success), then createKey REPLACES the key's values.
    const u = mac.newRecord(name!);
    if (key !== undefined) u.attrs.set(key, values);
    return { code: 0 };
  }
  if (cmd === '-append' && key !== undefined && values.length) {
    // appendToRecord: cd into the record first, which fails when it is missing ⚠️.
    if (kind === 'Groups') {
      const g = mac.groups.get(name!);
      if (!g || key !== 'GroupMembership') return g ? mac.unknown(file, a) : NOT_FOUND;
      for (const v of values) g.members.add(v);
      return { code: 0 };
    }
    const u = mac.users.get(name!);
    if (!u) return NOT_FOUND;
    u.attrs.set(key, [...(u.attrs.get(key) ?? []), ...values]);
    return { code: 0 };
  }
  if (cmd === '-delete' && key === undefined) {
    if (kind === 'Users') {
      if (!mac.users.has(name!)) return NOT_FOUND;
      if (mac.faults.dsclDeleteFails) return DENIED;
      mac.users.delete(name!); // ⚠️ the record only: no home, no group entries
      return { code: 0 };
    }
    if (!mac.groups.delete(name!)) return NOT_FOUND;
    return { code: 0 };
  }
  if (cmd === '-delete' && key !== undefined && values.length === 1) {
    if (kind === 'Groups') {
      const g = mac.groups.get(name!);
      if (!g || key !== 'GroupMembership') return g ? mac.unknown(file, a) : NOT_FOUND;
      g.members.delete(values[0]!);
      return { code: 0 };
    }
    const u = mac.users.get(name!);
    if (!u) return NOT_FOUND;
    u.attrs.set(key, (u.attrs.get(key) ?? []).filter((v) => v !== values[0]));
    return { code: 0 };
  }
  return mac.unknown(file, a);
}

/**
 * `dscl -q .` with commands on stdin: lines as fscanf("%[^\n]%*c") reads them, words as
 * dscl_get_string splits them, and — as in the DSTools source — exit 0 whatever happened.
 */
export function dsclCommandMode(mac: FakeMac, file: string, a: string[], stdin: string): Out {
  if (a.length !== 2 || a[0] !== '-q' || a[1] !== '.') return mac.unknown(file, a);
  const err: string[] = [];
  for (const line of stdin.split('\n')) {
    assert.ok(line.length < 4096, "line would overflow dscl's 4096-byte input buffer");
    if (line === '') continue;
    if (line === 'quit' || line === 'exit' || line === 'q') break;
    const words = dsclTokens(line);
    if (words[0]?.replace(/^-/, '') !== 'passwd') {
      mac.unmodelled.push(`dscl command mode: ${words[0]}`);
      continue;
    }
    const u = /^\/Users\/([^/]+)$/.test(words[1] ?? '') ? mac.users.get(words[1]!.slice(7)) : undefined;
    if (mac.faults.notRoot) err.push(DENIED.stderr!);
    else if (!u) err.push(NOT_FOUND.stderr!);
    else if (words.length !== 3) err.push('<dscl_cmd> DS Error: -14090 (eDSAuthFailed)\n'); // old+new form, or worse
    else if (mac.faults.passwdEchoesLine) err.push(`passwd: DS error: eDSAuthPasswordQualityCheckFailed (${line})\n`);
    else if (!mac.faults.passwdSilentlyIgnored) setPassword(mac, u, words[2]!);
  }
  return { code: 0, stderr: err.join('') };
}

/**
 * ⚠️ Setting a password adds a ShadowHash authority if there is none and keeps the other
 * values. On a Mac where nobody holds a Secure Token yet, the account gets one unless its
 * AuthenticationAuthority carries ;DisabledTags;SecureToken (mkuser's notes, Apple's guide).
 */
function setPassword(mac: FakeMac, u: FakeUser, pw: string): void {
  u.password = pw;
  u.passwordSetAt = mac.tick();
  let auth = u.attrs.get('AuthenticationAuthority') ?? [];
  if (!auth.some((v) => v.startsWith(';ShadowHash;'))) auth = [...auth, SHADOW];
  const anyHolder = [...mac.users.values()].some((o) => o.attrs.get('AuthenticationAuthority')?.includes(TOKEN));
  if (!anyHolder && !auth.includes(NO_TOKEN)) auth = [...auth, TOKEN];
  if (mac.faults.passwdReenables) auth = auth.filter((v) => v !== DISABLED);
  if (mac.faults.passwdDropsNoTokenTag) auth = auth.filter((v) => v !== NO_TOKEN);
  u.attrs.set('AuthenticationAuthority', auth);
}

// ------------------------------------------------------------------ sysadminctl, dseditgroup

const STAMP = '2030-01-01 00:00:00.000 sysadminctl[4242:4242]';

// ⚠️ sysadminctl reports everything on stderr and exits 0 even on failure (Chef's provider).
// Only -deleteUser: the backend creates accounts with dscl.
export function sysadminctl(mac: FakeMac, file: string, a: string[]): Out {
  if (a[0] === '-deleteUser' && a.length === 2) {
    const name = a[1]!;
    const u = mac.users.get(name);
    if (mac.faults.notRoot) return { code: 0, stderr: `${STAMP} sysadminctl should be run as root\n` };
    if (!u) return { code: 0, stderr: `${STAMP} User ${name} not found\n` };
    if (mac.faults.deleteUserSilentlyFails) return { code: 0, stderr: `${STAMP} Deleting record for ${name}\n` };
    const home = u.attrs.get('NFSHomeDirectory')?.[0];
    if (home && !mac.faults.deleteKeepsHome) for (const p of mac.under(home)) mac.fs.delete(p);
    if (mac.faults.deleteUser14120) {
      // microsoft/shell-intune-samples#33: the home goes, the record stays.
      return { code: 0, stderr: `${STAMP} Deleting record for ${name}\n${STAMP} ### Error:-14120 File:/AppleInternal/Library/BuildRoots/…/DSRecord.m Line:563\n` };
    }
    mac.users.delete(name);
    if (!mac.faults.deleteLeavesMemberships) for (const g of mac.groups.values()) g.members.delete(name);
    return { code: 0, stderr: `${STAMP} Deleting record for ${name}\n` };
  }
  return mac.unknown(file, a);
}

// ⚠️ checkmember: "yes …"/exit 0 or "no …"/non-zero (third-party scripts); the codes are ours.
export function dseditgroup(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length === 4 && a[0] === '-o' && a[1] === 'create' && a[2] === '-q') {
    if (mac.faults.notRoot) return DENIED;
    if (mac.groups.has(a[3]!)) return { code: 64, stderr: 'Group already exists.\n' };
    mac.groups.set(a[3]!, { gid: mac.allocGid(), members: new Set() });
    return { code: 0 };
  }
  if (a.length === 8 && a[0] === '-o' && a[1] === 'edit' && a[2] === '-q' && (a[3] === '-a' || a[3] === '-d') && a[5] === '-t' && a[6] === 'user') {
    const [op, name, group] = [a[3], a[4]!, a[7]!];
    const g = mac.groups.get(group);
    if (mac.faults.notRoot) return DENIED;
    if (!g) return { code: 64, stderr: `Group ${group} not found.\n` };
    if (!mac.users.has(name)) return { code: 64, stderr: `Record ${name} was not found.\n` };
    if (op === '-a') g.members.add(name);
    else if (!g.members.delete(name)) return { code: 64, stderr: `${name} is not a member of ${group}.\n` };
    return { code: 0 };
  }
  if (a.length === 5 && a[0] === '-o' && a[1] === 'checkmember' && a[2] === '-m') {
    const [name, group] = [a[3]!, a[4]!];
    if (!mac.users.has(name)) return { code: 64, stdout: 'Unable to find the user record\n' };
    if (!mac.groups.has(group)) return { code: 64, stdout: 'Unable to find the group record\n' };
    return mac.isMember(name, group) ? { code: 0, stdout: `yes ${name} is a member of ${group}\n` } : { code: 67, stdout: `no ${name} is NOT a member of ${group}\n` };
  }
  return mac.unknown(file, a);
}

// ------------------------------------------------------------------ plists

/** dscl -plist output for one record. */
export function plist(entries: [string, string[]][]): string {
  const body = entries.map(([k, vs]) => `\t<key>dsAttrTypeStandard:${k}</key>\n\t<array>\n${vs.map((v) => `\t\t<string>${esc(v)}</string>\n`).join('')}\t</array>\n`).join('');
  return `${HEAD}<dict>\n${body}</dict>\n</plist>\n`;
}

const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n';
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

// ------------------------------------------------------------------ dscl's splitter

/**
 * How dscl's command mode splits a line: a port of dscl_get_string() from Apple's DSTools
 * dscl.m (10.5 era; current sources are not published ⚠️), quirks included — a quoted word
 * ends at EITHER quote character, and a backslash at a word's first position is kept.
 */
export function dsclTokens(line: string): string[] {
  const words: string[] = [];
  let s = 0;
  for (;;) {
    while (line[s] === ' ' || line[s] === '\t') s++;
    if (s >= line.length) return words;
    let x = s;
    let quote = false;
    if (line[x] === '"' || line[x] === "'") {
      quote = true;
      x = ++s;
    }
    let i = 0;
    let escAt = 0;
    for (;;) {
      const c = line[x + i];
      if (c === undefined) break;
      if (quote && (c === '"' || c === "'")) break;
      if (!quote && (c === ' ' || c === '\t')) break;
      if (c === '\\') {
        if (escAt === 0) escAt = i;
        i++;
        if (line[x + i] === undefined) break;
      }
      i++;
    }
    const p = [...line.slice(x, x + i)];
    s += quote ? i + 1 : i;
    while (escAt !== 0) {
      let j = escAt + 1;
      if (p[j] === '\\') j++;
      escAt = 0;
      for (; j < p.length; j++) {
        p[j - 1] = p[j]!;
        if (p[j] === '\\' && escAt === 0) escAt = j - 1;
      }
      p.length = j - 1;
    }
    words.push(p.join(''));
  }
}
