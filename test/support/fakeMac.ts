/**
 * A RECORDED macOS for the MacBackend tests: a Runner that records every argv and stdin and
 * answers from a small in-memory model of the local directory (users, groups), the file system
 * parts the backend touches (homes, temporary folders, spools), processes and pwpolicy.
 *
 * What it proves: our argv, our stdin payloads, the order of steps, our parsing of the answers,
 * our checks and error mapping. What it does NOT prove: that macOS answers like the model. Each
 * modelled behaviour taken from man pages, Apple's published (10.5-era) DSTools sources or
 * third-party tools is marked ⚠️; agent/os/macos.test.ts lists what to check on a real Mac.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { randomBytes } from 'node:crypto';
import type { Group } from '../../protocol/groups.ts';
import { inAnHour } from '../../agent/os/contract.ts';
import { ExecError, type RunResult, type Runner } from '../../agent/os/exec.ts';
import { MAC_BIN, MacBackend } from '../../agent/os/macos.ts';
import { bashSyntaxError, bashWords, shellLine } from './shellQuote.ts';

export interface Call {
  file: string;
  argv: string[];
  stdin?: string;
}
export interface FakeUser {
  /** Attributes as dscl shows them (RecordName excluded). */
  attrs: Map<string, string[]>;
  /** undefined: no password at all; '': an empty one (what sysadminctl without -password leaves ⚠️). */
  password?: string;
  passwordSetAt?: number;
  /** Parsed from the file given to pwpolicy -setaccountpolicies. */
  accountPolicies?: AuthPolicy[];
  /** Deprecated pwpolicy -setpolicy key=value pairs. */
  legacyPolicy: Map<string, string>;
}
export interface AuthPolicy {
  id: string;
  content: string;
  params: Record<string, unknown>;
}
export interface FsEntry {
  uid: number;
  type: 'Directory' | 'Regular File' | 'Symbolic Link';
  /** chflags uchg: not even root may delete it until the flag is cleared. */
  uchg?: boolean;
}
interface FakeProc {
  ruid: number;
  euid: number;
  /** launchd domain the process lives in: the login session, the background domain, or neither. */
  domain: 'gui' | 'user' | 'none';
  alive: boolean;
}
type Out = { code: number; stdout?: string; stderr?: string };

export const BIN = {
  sysadminctl: '/usr/sbin/sysadminctl',
  dscl: '/usr/bin/dscl',
  dseditgroup: '/usr/sbin/dseditgroup',
  pwpolicy: '/usr/bin/pwpolicy',
  launchctl: '/bin/launchctl',
  pgrep: '/usr/bin/pgrep',
  pkill: '/usr/bin/pkill',
  createhomedir: '/usr/sbin/createhomedir',
  stat: '/usr/bin/stat',
  find: '/usr/bin/find',
  rm: '/bin/rm',
  chflags: '/usr/bin/chflags',
  test: '/bin/test',
} as const;

export const DISABLED = ';DisabledUser;';
export const NO_TOKEN = ';DisabledTags;SecureToken';
export const TOKEN = ';SecureToken;';
const SHADOW = ';ShadowHash;HASHLIST:<SALTED-SHA512-PBKDF2,SRP-RFC5054-4096-SHA512-PBKDF2>';
// ⚠️ dscl's exit status is -(DS status) truncated to 8 bits: -14136 → 56, -14120 → 40 (DSTools source).
const NOT_FOUND: Out = { code: 56, stderr: '<dscl_cmd> DS Error: -14136 (eDSRecordNotFound)\n' };
const DENIED: Out = { code: 40, stderr: '<dscl_cmd> DS Error: -14120 (eDSPermissionError)\n' };
const STAMP = '2030-01-01 00:00:00.000 sysadminctl[4242:4242]';

/** Thrown by the runner once `crashAfter` commands have run: the agent died there. */
export class AgentCrashed extends Error {}

export class FakeMac {
  readonly users = new Map<string, FakeUser>();
  readonly groups = new Map<string, { gid: number; members: Set<string> }>([
    ['admin', { gid: 80, members: new Set(['root']) }],
    ['staff', { gid: 20, members: new Set(['root']) }],
    ['wheel', { gid: 0, members: new Set(['root']) }],
  ]);
  /** Files and folders by absolute path. */
  readonly fs = new Map<string, FsEntry>(
    ['/Users', '/Users/Shared', '/private/tmp', '/private/var/tmp', '/private/var/folders', '/private/var/at', '/private/var/at/tabs', '/private/var/at/jobs', '/private/var/mail', '/private/var/db/sudo/ts'].map((p) => [p, { uid: 0, type: 'Directory' }]),
  );
  /** Mount points of other file systems (find -x must not descend into them). */
  readonly mounts = new Set<string>();
  readonly procs = new Map<number, FakeProc>();
  readonly calls: Call[] = [];
  /** Commands the model does not know: each is a test failure (see `assertAllModelled`). */
  readonly unmodelled: string[] = [];
  readonly faults = {
    notRoot: false, // writes refused
    addUserSilentlyFails: false, // sysadminctl -addUser: message, exit 0, nothing created
    deleteUserSilentlyFails: false, // sysadminctl -deleteUser: exit 0, nothing deleted
    deleteUser14120: false, // sysadminctl -deleteUser from a daemon: home deleted, record kept, -14120 (exit 0 ⚠️)
    deleteKeepsHome: false,
    deleteLeavesMemberships: false,
    dsclDeleteFails: false, // dscl . -delete /Users/N refused
    readFails: false, // dscl -read: opendirectoryd unreachable
    passwdSilentlyIgnored: false, // dscl command mode: no output, nothing changed
    passwdEchoesLine: false, // dscl command mode: an error message that quotes the input line
    passwdReenables: false, // setting the password drops ;DisabledUser;
    passwdDropsNoTokenTag: false, // setting the password drops ;DisabledTags;SecureToken
    disableuserIgnored: false, // pwpolicy -disableuser exits 0 and changes nothing
    enableuserKeepsTag: false, // pwpolicy -enableuser leaves ;DisabledUser; in place
    setpolicyIgnored: false, // both -setpolicy and -setaccountpolicies
    getpolicyFourDigitYear: false,
    rmFails: new Set<string>(), // paths rm/find cannot delete (e.g. a volume is read-only)
  };
  /** Runs before a command creates a user record: lets a test play a second administrator. */
  beforeRecordCreate?: (name: string) => void;
  /** When set, every command after this many recorded calls rejects: the agent died. */
  crashAfter?: number;
  /** The clock pwpolicy -authentication-allowed reads (ms since the epoch). */
  now = Date.now();
  private clock = 1_900_000_000;
  private nextUid = 501;
  private nextGid = 700;
  private nextPid = 2000;

  readonly run: Runner = async (file, argv, opts = {}) => {
    if (this.crashAfter !== undefined && this.calls.length >= this.crashAfter) throw new AgentCrashed('the agent died here');
    const call: Call = { file, argv: [...argv], ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}) };
    this.calls.push(call);
    const out = this.dispatch(file, argv, opts.stdin);
    const result: RunResult = { code: out.code, stdout: out.stdout ?? '', stderr: out.stderr ?? '' };
    // Same contract as exec.ts's run: exit codes outside okCodes reject with ExecError.
    if (!(opts.okCodes ?? [0]).includes(result.code)) throw new ExecError(file, result);
    return result;
  };

  // ---------------------------------------------------------------- for tests

  /** A full, enabled account as sysadminctl -addUser (no -password) leaves it ⚠️. */
  addUser(name: string, realName: string, uid = this.nextUid++): FakeUser {
    const u = this.newRecord(name);
    for (const [k, v] of [['UniqueID', String(uid)], ['PrimaryGroupID', '20'], ['RealName', realName], ['NFSHomeDirectory', `/Users/${name}`], ['UserShell', '/bin/zsh'], ['AuthenticationAuthority', SHADOW]] as const) u.attrs.set(k, [v]);
    // ⚠️ Modelled pessimistically: no -password = an EMPTY password until dscl passwd runs.
    u.password = '';
    this.mkdir(`/Users/${name}`, uid);
    return u;
  }

  user(name: string): FakeUser {
    const u = this.users.get(name);
    assert.ok(u, `no user ${name}`);
    return u;
  }
  attr(name: string, key: string): string | undefined {
    return this.users.get(name)?.attrs.get(key)?.[0];
  }
  auth(name: string): string[] {
    return this.users.get(name)?.attrs.get('AuthenticationAuthority') ?? [];
  }
  uidOf(name: string): number | undefined {
    const v = this.attr(name, 'UniqueID');
    return v === undefined ? undefined : Number(v);
  }

  spawn(uid: number, opts: { euidOnly?: boolean; domain?: FakeProc['domain'] } = {}): { pid: number; alive(): boolean; kill(): void } {
    const pid = this.nextPid++;
    const p: FakeProc = { ruid: opts.euidOnly ? 0 : uid, euid: uid, domain: opts.domain ?? 'none', alive: true };
    this.procs.set(pid, p);
    return { pid, alive: () => p.alive, kill: () => void (p.alive = false) };
  }

  /** Membership as the membership API sees it: listed, or the primary group. */
  isMember(name: string, group: string): boolean {
    const g = this.groups.get(group);
    return this.users.has(name) && !!g && (g.members.has(name) || this.attr(name, 'PrimaryGroupID') === String(g.gid));
  }

  disabled(name: string): boolean {
    return this.auth(name).includes(DISABLED);
  }

  /** Someone could log in: a uid, a password (empty counts), and not disabled. */
  usable(name: string): boolean {
    const u = this.users.get(name);
    return !!u && this.uidOf(name) !== undefined && u.password !== undefined && !this.disabled(name);
  }

  /** What pwpolicy -authentication-allowed answers at `now` ⚠️ (DisabledUser, legacy and account policies). */
  authenticationAllowed(name: string): boolean {
    const u = this.users.get(name);
    if (!u || this.disabled(name)) return false;
    const hard = u.legacyPolicy.get('hardExpireDateGMT');
    if (u.legacyPolicy.get('usingHardExpirationDate') === '1' && hard) {
      // pwpolicy(8), legacy: "user's account is disabled on the date" — from 00:00 GMT of it.
      const [mm, dd, yy] = hard.split('/').map(Number) as [number, number, number];
      if (this.now >= Date.UTC(yy < 100 ? 2000 + yy : yy, mm - 1, dd)) return false;
    }
    for (const p of u.accountPolicies ?? []) {
      const m = /^\s*policyAttributeCurrentTime\s*<\s*(\w+)\s*$/.exec(p.content);
      const limit = m ? (/^\d+$/.test(m[1]!) ? Number(m[1]) : p.params[m[1]!]) : undefined;
      if (typeof limit !== 'number') {
        this.unmodelled.push(`policy content: ${p.content}`);
        return false;
      }
      if (!(this.now / 1000 < limit)) return false;
    }
    return true;
  }

  mkdir(p: string, uid: number): void {
    this.fs.set(p, { uid, type: 'Directory' });
  }
  addFile(p: string, uid: number, type: FsEntry['type'] = 'Regular File', uchg = false): void {
    this.fs.set(p, { uid, type, ...(uchg ? { uchg } : {}) });
  }
  /** Paths under `p` (itself included). */
  under(p: string): string[] {
    return [...this.fs.keys()].filter((q) => q === p || q.startsWith(`${p}/`));
  }

  assertAllModelled(): void {
    assert.deepEqual(this.unmodelled, [], 'the backend ran commands the model does not know');
  }

  // ---------------------------------------------------------------- dispatch

  private dispatch(file: string, a: string[], stdin: string | undefined): Out {
    switch (file) {
      case BIN.sysadminctl:
        return this.sysadminctl(file, a);
      case BIN.dscl:
        return stdin === undefined ? this.dscl(file, a) : this.dsclCommandMode(file, a, stdin);
      case BIN.dseditgroup:
        return this.dseditgroup(file, a);
      case BIN.pwpolicy:
        return this.pwpolicy(file, a);
      case BIN.launchctl:
        return this.launchctl(file, a);
      case BIN.pgrep:
      case BIN.pkill:
        return this.signal(file, a);
      case BIN.createhomedir:
        return this.createhomedir(file, a);
      case BIN.stat:
        return this.stat(file, a);
      case BIN.find:
        return this.find(file, a);
      case BIN.rm:
        return this.rm(file, a);
      case BIN.chflags:
        return this.chflags(file, a);
      case BIN.test:
        return a.length === 2 && a[0] === '-e' ? { code: this.fs.has(a[1]!) ? 0 : 1 } : this.unknown(file, a);
    }
    return this.unknown(file, a);
  }

  private unknown(file: string, a: string[]): Out {
    this.unmodelled.push(shellLine([file, ...a]));
    return { code: 127, stderr: 'unmodelled command\n' };
  }

  private newRecord(name: string): FakeUser {
    this.beforeRecordCreate?.(name);
    const existing = this.users.get(name);
    if (existing) return existing;
    const u: FakeUser = { attrs: new Map(), legacyPolicy: new Map() };
    this.users.set(name, u);
    return u;
  }

  // ⚠️ sysadminctl reports everything on stderr and exits 0 even on failure (Chef's provider).
  private sysadminctl(file: string, a: string[]): Out {
    if (a[0] === '-addUser' && a.length === 6 && a[2] === '-fullName' && a[4] === '-home' && a[5] === `/Users/${a[1]}`) {
      const [name, fullName] = [a[1]!, a[3]!];
      if (this.faults.notRoot) return { code: 0, stderr: `${STAMP} sysadminctl should be run as root, or in interactive mode! (errAuthorizationInteractionNotAllowed)\n` };
      if (this.faults.addUserSilentlyFails) return { code: 0, stderr: `${STAMP} ### Error:-14009 Creating user record failed\n` };
      if (this.users.has(name)) return { code: 0, stderr: `${STAMP} Failed to create ${name}: eDSRecordAlreadyExists\n` };
      this.beforeRecordCreate?.(name);
      if (this.users.has(name)) return { code: 0, stderr: `${STAMP} Failed to create ${name}: eDSRecordAlreadyExists\n` };
      this.addUser(name, fullName);
      return { code: 0, stderr: `${STAMP} Creating user record…\n` };
    }
    if (a[0] === '-deleteUser' && a.length === 2) {
      const name = a[1]!;
      const u = this.users.get(name);
      if (this.faults.notRoot) return { code: 0, stderr: `${STAMP} sysadminctl should be run as root\n` };
      if (!u) return { code: 0, stderr: `${STAMP} User ${name} not found\n` };
      if (this.faults.deleteUserSilentlyFails) return { code: 0, stderr: `${STAMP} Deleting record for ${name}\n` };
      const home = u.attrs.get('NFSHomeDirectory')?.[0];
      if (home && !this.faults.deleteKeepsHome) for (const p of this.under(home)) this.fs.delete(p);
      if (this.faults.deleteUser14120) {
        // microsoft/shell-intune-samples#33: the home goes, the record stays.
        return { code: 0, stderr: `${STAMP} Deleting record for ${name}\n${STAMP} ### Error:-14120 File:/AppleInternal/Library/BuildRoots/…/DSRecord.m Line:563\n` };
      }
      this.users.delete(name);
      if (!this.faults.deleteLeavesMemberships) for (const g of this.groups.values()) g.members.delete(name);
      return { code: 0, stderr: `${STAMP} Deleting record for ${name}\n` };
    }
    return this.unknown(file, a);
  }

  private record(recPath: string): Map<string, string[]> | null {
    const [, kind, name] = /^\/(Users|Groups)\/([^/]+)$/.exec(recPath) ?? [];
    if (kind === 'Users') {
      const u = this.users.get(name!);
      return u ? new Map([['RecordName', [name!]], ...u.attrs]) : null;
    }
    const g = kind === 'Groups' ? this.groups.get(name!) : undefined;
    if (!g) return null;
    const attrs = new Map([['RecordName', [name!]], ['PrimaryGroupID', [String(g.gid)]]]);
    if (g.members.size) attrs.set('GroupMembership', [...g.members]); // ⚠️ no members = no key
    return attrs;
  }

  private dscl(file: string, a: string[]): Out {
    if (a[0] === '-plist' && a[1] === '.' && a[2] === '-read' && a.length >= 4) {
      if (this.faults.readFails) return { code: 70, stderr: 'Operation failed with error: eServerNotRunning\n' };
      const attrs = this.record(a[3]!);
      if (!attrs) return NOT_FOUND;
      const keys = a.slice(4);
      // ⚠️ A requested key the record lacks: "No such key: K" and exit 0 (Chef's provider).
      const noKey = keys.filter((k) => !attrs.has(k)).map((k) => `No such key: ${k}\n`).join('');
      const present = keys.filter((k) => attrs.has(k));
      return present.length ? { code: 0, stdout: plist(present.map((k) => [k, attrs.get(k)!])), stderr: noKey } : { code: 0, stdout: noKey };
    }
    if (a[0] !== '.') return this.unknown(file, a);
    const [cmd, recPath, key, ...values] = a.slice(1) as [string, string | undefined, string | undefined, ...string[]];
    if (cmd === '-readpl' && a.length === 5 && key === 'accountPolicyData' && values[0] === 'passwordLastSetTime') {
      const u = this.users.get(recPath!.replace(/^\/Users\//, ''));
      if (!u) return NOT_FOUND;
      // ⚠️ Output "key: value" (Salt's mac_shadow); missing key: an error and a non-zero exit.
      return u.passwordSetAt === undefined ? { code: 1, stderr: 'No such plist path: passwordLastSetTime\n' } : { code: 0, stdout: `passwordLastSetTime: ${u.passwordSetAt}\n` };
    }
    if (cmd === '-list' && a.length === 4) {
      // ⚠️ "-list path key": one line per record, the name then the key's values; none: the name alone.
      if (recPath === '/Users' && key === 'UniqueID') {
        return { code: 0, stdout: [...this.users].map(([n, u]) => [n, ...(u.attrs.get('UniqueID') ?? [])].join('\t\t')).join('\n') + '\n' };
      }
      if (recPath === '/Groups' && key === 'GroupMembership') {
        return { code: 0, stdout: [...this.groups].map(([n, g]) => [n, ...g.members].join(' ')).join('\n') + '\n' };
      }
    }
    const [, kind, name] = /^\/(Users|Groups)\/([^/]+)$/.exec(recPath ?? '') ?? [];
    if (!kind) return this.unknown(file, a);
    if (this.faults.notRoot && cmd !== '-read') return DENIED;
    if (cmd === '-create' && kind === 'Users') {
      // DSTools createRecord: createAndCd makes the record if it is missing (an existing one is
      // fine: eDSRecordAlreadyExists counts as success), then createKey REPLACES the key's values.
      const u = this.newRecord(name!);
      if (key !== undefined) u.attrs.set(key, values);
      return { code: 0 };
    }
    if (cmd === '-append' && key !== undefined && values.length) {
      // appendToRecord: cd into the record first, which fails when it is missing ⚠️.
      if (kind === 'Groups') {
        const g = this.groups.get(name!);
        if (!g || key !== 'GroupMembership') return g ? this.unknown(file, a) : NOT_FOUND;
        for (const v of values) g.members.add(v);
        return { code: 0 };
      }
      const u = this.users.get(name!);
      if (!u) return NOT_FOUND;
      u.attrs.set(key, [...(u.attrs.get(key) ?? []), ...values]);
      return { code: 0 };
    }
    if (cmd === '-delete' && key === undefined) {
      if (kind === 'Users') {
        if (!this.users.has(name!)) return NOT_FOUND;
        if (this.faults.dsclDeleteFails) return DENIED;
        this.users.delete(name!); // ⚠️ the record only: no home, no group entries
        return { code: 0 };
      }
      if (!this.groups.delete(name!)) return NOT_FOUND;
      return { code: 0 };
    }
    if (cmd === '-delete' && key !== undefined && values.length === 1) {
      if (kind === 'Groups') {
        const g = this.groups.get(name!);
        if (!g || key !== 'GroupMembership') return g ? this.unknown(file, a) : NOT_FOUND;
        g.members.delete(values[0]!);
        return { code: 0 };
      }
      const u = this.users.get(name!);
      if (!u) return NOT_FOUND;
      u.attrs.set(key, (u.attrs.get(key) ?? []).filter((v) => v !== values[0]));
      return { code: 0 };
    }
    return this.unknown(file, a);
  }

  /**
   * `dscl -q .` with commands on stdin: lines as fscanf("%[^\n]%*c") reads them, words as
   * dscl_get_string splits them, and — as in the DSTools source — exit 0 whatever happened.
   */
  private dsclCommandMode(file: string, a: string[], stdin: string): Out {
    if (a.length !== 2 || a[0] !== '-q' || a[1] !== '.') return this.unknown(file, a);
    const err: string[] = [];
    for (const line of stdin.split('\n')) {
      assert.ok(line.length < 4096, "line would overflow dscl's 4096-byte input buffer");
      if (line === '') continue;
      if (line === 'quit' || line === 'exit' || line === 'q') break;
      const words = dsclTokens(line);
      if (words[0]?.replace(/^-/, '') !== 'passwd') {
        this.unmodelled.push(`dscl command mode: ${words[0]}`);
        continue;
      }
      const u = /^\/Users\/([^/]+)$/.test(words[1] ?? '') ? this.users.get(words[1]!.slice(7)) : undefined;
      if (this.faults.notRoot) err.push(DENIED.stderr!);
      else if (!u) err.push(NOT_FOUND.stderr!);
      else if (words.length !== 3) err.push('<dscl_cmd> DS Error: -14090 (eDSAuthFailed)\n'); // old+new form, or worse
      else if (this.faults.passwdEchoesLine) err.push(`passwd: DS error: eDSAuthPasswordQualityCheckFailed (${line})\n`);
      else if (!this.faults.passwdSilentlyIgnored) this.setPassword(u, words[2]!);
    }
    return { code: 0, stderr: err.join('') };
  }

  /**
   * ⚠️ Setting a password adds a ShadowHash authority if there is none and keeps the other
   * values. On a Mac where nobody holds a Secure Token yet, the account gets one unless its
   * AuthenticationAuthority carries ;DisabledTags;SecureToken (mkuser's notes, Apple's guide).
   */
  private setPassword(u: FakeUser, pw: string): void {
    u.password = pw;
    u.passwordSetAt = (this.clock += 1) + 0.5;
    let auth = u.attrs.get('AuthenticationAuthority') ?? [];
    if (!auth.some((v) => v.startsWith(';ShadowHash;'))) auth = [...auth, SHADOW];
    const anyHolder = [...this.users.values()].some((o) => o.attrs.get('AuthenticationAuthority')?.includes(TOKEN));
    if (!anyHolder && !auth.includes(NO_TOKEN)) auth = [...auth, TOKEN];
    if (this.faults.passwdReenables) auth = auth.filter((v) => v !== DISABLED);
    if (this.faults.passwdDropsNoTokenTag) auth = auth.filter((v) => v !== NO_TOKEN);
    u.attrs.set('AuthenticationAuthority', auth);
  }

  // ⚠️ checkmember: "yes …"/exit 0 or "no …"/non-zero (third-party scripts); the codes are ours.
  private dseditgroup(file: string, a: string[]): Out {
    if (a.length === 4 && a[0] === '-o' && a[1] === 'create' && a[2] === '-q') {
      if (this.faults.notRoot) return DENIED;
      if (this.groups.has(a[3]!)) return { code: 64, stderr: 'Group already exists.\n' };
      this.groups.set(a[3]!, { gid: this.nextGid++, members: new Set() });
      return { code: 0 };
    }
    if (a.length === 8 && a[0] === '-o' && a[1] === 'edit' && a[2] === '-q' && (a[3] === '-a' || a[3] === '-d') && a[5] === '-t' && a[6] === 'user') {
      const [op, name, group] = [a[3], a[4]!, a[7]!];
      const g = this.groups.get(group);
      if (this.faults.notRoot) return DENIED;
      if (!g) return { code: 64, stderr: `Group ${group} not found.\n` };
      if (!this.users.has(name)) return { code: 64, stderr: `Record ${name} was not found.\n` };
      if (op === '-a') g.members.add(name);
      else if (!g.members.delete(name)) return { code: 64, stderr: `${name} is not a member of ${group}.\n` };
      return { code: 0 };
    }
    if (a.length === 5 && a[0] === '-o' && a[1] === 'checkmember' && a[2] === '-m') {
      const [name, group] = [a[3]!, a[4]!];
      if (!this.users.has(name)) return { code: 64, stdout: 'Unable to find the user record\n' };
      if (!this.groups.has(group)) return { code: 64, stdout: 'Unable to find the group record\n' };
      return this.isMember(name, group) ? { code: 0, stdout: `yes ${name} is a member of ${group}\n` } : { code: 67, stdout: `no ${name} is NOT a member of ${group}\n` };
    }
    return this.unknown(file, a);
  }

  // ⚠️ pwpolicy's exit status and messages (Salt's mac_shadow: "Error: user <NAME> not found").
  private pwpolicy(file: string, a: string[]): Out {
    if (a.length < 5 || a[0] !== '-u' || a[2] !== '-n' || a[3] !== '/Local/Default') return this.unknown(file, a);
    const [name, command, rest] = [a[1]!, a[4]!, a.slice(5)];
    const u = this.users.get(name);
    if (!u) return { code: 1, stderr: `Error: user <${name}> not found\n` };
    const writes = !['-getpolicy', '-getaccountpolicies', '-authentication-allowed'].includes(command);
    if (this.faults.notRoot && writes) return { code: 1, stderr: 'Permission denied\n' };
    const auth = u.attrs.get('AuthenticationAuthority') ?? [];
    if (command === '-disableuser' && !rest.length) {
      if (!this.faults.disableuserIgnored && !auth.includes(DISABLED)) u.attrs.set('AuthenticationAuthority', [...auth, DISABLED]);
      return { code: 0 };
    }
    if (command === '-enableuser' && !rest.length) {
      if (!this.faults.enableuserKeepsTag) u.attrs.set('AuthenticationAuthority', auth.filter((v) => v !== DISABLED));
      return { code: 0 };
    }
    if (command === '-setpolicy' && rest.length === 1) {
      if (!this.faults.setpolicyIgnored) {
        for (const word of rest[0]!.split(' ')) {
          const m = /^(\w+)=(\S+)$/.exec(word);
          if (!m) return { code: 1, stderr: `invalid policy ${word}\n` };
          u.legacyPolicy.set(m[1]!, m[2]!);
        }
      }
      return { code: 0 };
    }
    if (command === '-getpolicy' && !rest.length) {
      const words = [...u.legacyPolicy].map(([k, v]) => `${k}=${this.faults.getpolicyFourDigitYear && k === 'hardExpireDateGMT' ? v.replace(/\/(\d\d)$/, '/20$1') : v}`);
      return { code: 0, stdout: `Getting policy for ${name} /Local/Default\n\n${['isDisabled=0', ...words].join(' ')}\n` };
    }
    if (command === '-setaccountpolicies' && rest.length === 1) {
      // "Takes one argument: the name of the file containing the policies" (pwpolicy(8)).
      let policies: AuthPolicy[];
      try {
        policies = readAccountPolicies(readFileSync(rest[0]!, 'utf8'));
      } catch (e) {
        return { code: 1, stderr: `Error reading policies from ${rest[0]}: ${(e as Error).message}\n` };
      }
      if (!this.faults.setpolicyIgnored) u.accountPolicies = policies; // "Sets (replaces)"
      return { code: 0 };
    }
    if (command === '-getaccountpolicies' && !rest.length) {
      // ⚠️ A line of text, then the plist (CIS/STIG checks drop it with `tail -n +2`).
      return { code: 0, stdout: `Getting account policies for user <${name}>\n${accountPoliciesPlist(u.accountPolicies ?? [])}` };
    }
    if (command === '-authentication-allowed' && !rest.length) {
      // ⚠️ Output and exit status are this model's convention; the man page only names the command.
      return this.authenticationAllowed(name) ? { code: 0, stdout: 'Policy allows user to authenticate\n' } : { code: 1, stdout: 'Policy does not allow user to authenticate\n' };
    }
    return this.unknown(file, a);
  }

  // ⚠️ bootout of a domain nobody is in: "Boot-out failed: 3: No such process", exit 3.
  private launchctl(file: string, a: string[]): Out {
    const m = a.length === 2 && a[0] === 'bootout' ? /^(gui|user)\/(\d+)$/.exec(a[1]!) : null;
    if (!m) return this.unknown(file, a);
    const hits = [...this.procs.values()].filter((p) => p.alive && p.ruid === Number(m[2]) && p.domain === m[1]);
    for (const p of hits) p.alive = false;
    return hits.length ? { code: 0 } : { code: 3, stderr: 'Boot-out failed: 3: No such process\n' };
  }

  /** BSD pgrep/pkill by uid: 0 matched, 1 none, 2 usage. -U real uid, -u effective uid. */
  private signal(file: string, a: string[]): Out {
    const args = file === BIN.pkill ? (a[0] === '-KILL' ? a.slice(1) : null) : a;
    if (!args || args.length !== 2 || (args[0] !== '-U' && args[0] !== '-u')) return this.unknown(file, a);
    if (!/^\d+$/.test(args[1]!)) return { code: 2, stderr: `${path.basename(file)}: invalid user name\n` };
    const uid = Number(args[1]);
    const hits = [...this.procs].filter(([, p]) => p.alive && (args[0] === '-U' ? p.ruid : p.euid) === uid);
    if (file === BIN.pkill) for (const [, p] of hits) p.alive = false;
    return hits.length ? { code: 0, stdout: file === BIN.pgrep ? hits.map(([pid]) => `${pid}\n`).join('') : '' } : { code: 1 };
  }

  /** ⚠️ createhomedir(8) -c -u NAME: the home at NFSHomeDirectory from the template, owned by the account. */
  private createhomedir(file: string, a: string[]): Out {
    if (a.length !== 3 || a[0] !== '-c' || a[1] !== '-u') return this.unknown(file, a);
    const name = a[2]!;
    const uid = this.uidOf(name);
    const home = this.attr(name, 'NFSHomeDirectory');
    if (this.faults.notRoot) return { code: 1, stderr: 'createhomedir: must be run as root\n' };
    if (uid === undefined || !home) return { code: 0, stdout: '' }; // ⚠️ silently nothing for an incomplete record
    if (!this.fs.has(home)) {
      this.mkdir(home, uid);
      for (const d of ['Library', 'Desktop', 'Documents']) this.mkdir(`${home}/${d}`, uid);
    }
    return { code: 0, stdout: `created ${home}\n` };
  }

  /** BSD stat -f FORMAT (lstat: a symlink is reported as itself). Only %u and %HT are modelled. */
  private stat(file: string, a: string[]): Out {
    if (a.length !== 3 || a[0] !== '-f' || a[1] !== '%u:%HT') return this.unknown(file, a);
    const e = this.fs.get(a[2]!);
    return e ? { code: 0, stdout: `${e.uid}:${e.type}\n` } : { code: 1, stderr: `stat: ${a[2]}: stat: No such file or directory\n` };
  }

  /** BSD find -x ROOT… -user UID -delete|-print: no symlink is followed (-P, the default). */
  private find(file: string, a: string[]): Out {
    const action = a.at(-1);
    const userAt = a.indexOf('-user');
    if (a[0] !== '-x' || userAt < 2 || userAt !== a.length - 3 || (action !== '-delete' && action !== '-print')) return this.unknown(file, a);
    const roots = a.slice(1, userAt);
    if (!/^\d+$/.test(a[userAt + 1]!)) return this.unknown(file, a);
    const uid = Number(a[userAt + 1]);
    const foreign = (p: string, root: string) => [...this.mounts].some((m) => m !== root && m.startsWith(`${root}/`) && (p === m || p.startsWith(`${m}/`)));
    const hits = roots.flatMap((r) => (this.fs.has(r) ? this.under(r).filter((p) => !foreign(p, r)) : [])).filter((p) => this.fs.get(p)!.uid === uid);
    if (action === '-print') return { code: 0, stdout: hits.map((p) => `${p}\n`).join('') };
    const err: string[] = [];
    for (const p of hits.sort((x, y) => y.length - x.length)) {
      const e = this.fs.get(p)!;
      if (e.uchg || this.faults.rmFails.has(p)) err.push(`find: -delete: ${p}: Operation not permitted\n`);
      else if (this.under(p).length > 1) err.push(`find: -delete: ${p}: Directory not empty\n`);
      else this.fs.delete(p);
    }
    return { code: err.length ? 1 : 0, stderr: err.join('') };
  }

  private rm(file: string, a: string[]): Out {
    if (a.length !== 2 || (a[0] !== '-rf' && a[0] !== '-f') || !a[1]!.startsWith('/')) return this.unknown(file, a);
    const p = a[1]!;
    if (a[0] === '-f') {
      const e = this.fs.get(p);
      if (e?.type === 'Directory') return { code: 1, stderr: `rm: ${p}: is a directory\n` };
      if (e && (e.uchg || this.faults.rmFails.has(p))) return { code: 1, stderr: `rm: ${p}: Operation not permitted\n` };
      this.fs.delete(p);
      return { code: 0 };
    }
    const err: string[] = [];
    for (const q of this.under(p).sort((x, y) => y.length - x.length)) {
      if (this.fs.get(q)!.uchg || this.faults.rmFails.has(q)) err.push(`rm: ${q}: Operation not permitted\n`);
      else if (this.under(q).length > 1) err.push(`rm: ${q}: Directory not empty\n`);
      else this.fs.delete(q);
    }
    return { code: err.length ? 1 : 0, stderr: err.join('') };
  }

  /** chflags -R nouchg PATH (no symlink followed, the -P default). */
  private chflags(file: string, a: string[]): Out {
    if (a.length !== 3 || a[0] !== '-R' || a[1] !== 'nouchg') return this.unknown(file, a);
    if (!this.fs.has(a[2]!)) return { code: 1, stderr: `chflags: ${a[2]}: No such file or directory\n` };
    for (const q of this.under(a[2]!)) delete this.fs.get(q)!.uchg;
    return { code: 0 };
  }
}

// ------------------------------------------------------------------ plists

/** dscl -plist output for one record. */
export function plist(entries: [string, string[]][]): string {
  const body = entries.map(([k, vs]) => `\t<key>dsAttrTypeStandard:${k}</key>\n\t<array>\n${vs.map((v) => `\t\t<string>${esc(v)}</string>\n`).join('')}\t</array>\n`).join('');
  return `${HEAD}<dict>\n${body}</dict>\n</plist>\n`;
}

const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n';
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * An account-policy file as pwpolicy would need it: well-formed XML (fast-xml-parser's
 * validator), a plist dict of policy categories, each an array of policy dicts with string
 * policyContent and policyIdentifier and an optional policyParameters dict. Only the
 * authentication category is kept (the backend sets no other).
 */
export function readAccountPolicies(xml: string): AuthPolicy[] {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new Error(`not well-formed XML: ${valid.err.msg}`);
  const doc = new XMLParser({ preserveOrder: true, ignoreDeclaration: true, ignoreAttributes: true, parseTagValue: false, trimValues: false }).parse(xml) as Node[];
  const root = doc.find((n) => 'plist' in n);
  if (!root) throw new Error('no <plist>');
  const top = plistValue(elements(root.plist as Node[])[0]);
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

type Node = Record<string, unknown>;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
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

/** Calls as shell lines, stdin shown as a here-string placeholder (never its content). */
export const lines = (calls: Call[]): string[] => calls.map((c) => shellLine([c.file, ...c.argv]) + (c.stdin === undefined ? '' : ' <<< STDIN'));

// ------------------------------------------------------------------ for the test files

/** A fresh model and a backend on it; `into` collects the models of one test file. */
export function recordedMac(into: FakeMac[] = []): { mac: FakeMac; backend: MacBackend } {
  const mac = new FakeMac();
  into.push(mac);
  return { mac, backend: new MacBackend({ run: mac.run }) };
}

/** Random, inside MAC_PASSWORD, with the shell metacharacters that mean nothing to dscl. Always starts with 'P:'. */
export const macPassword = (): string => `P:${randomBytes(12).toString('base64')}$(x)\`y\`;&|<>!#%`;

export const spec = (name: string, group: Group = 'Administrators', grantId = `grant-${name}`, expiresAt = inAnHour()) => ({ name, group, grantId, expiresAt });

/**
 * Every command the given calls ran renders as a shell line that bash parses (`bash -n`) and
 * splits back into the same argv; every tool by its MAC_BIN path; no password (they all start
 * with 'P:') in any argv.
 */
export function assertShellSafe(calls: Call[]): void {
  const argvs = [...new Map(calls.map((c) => [shellLine([c.file, ...c.argv]), [c.file, ...c.argv]])).entries()];
  assert.equal(bashSyntaxError(argvs.map(([line]) => line).join('\n')), null);
  assert.deepEqual(bashWords(argvs.map(([line]) => line)), argvs.map(([, argv]) => argv));
  assert.ok(calls.every((c) => Object.values(MAC_BIN).includes(c.file as never)), 'a tool not by its MAC_BIN path');
  assert.ok(calls.every((c) => !c.argv.some((a) => a.startsWith('P:'))), 'a password in an argv');
}
