/**
 * MacBackend against a RECORDED macOS: a Runner that records every argv and stdin and answers
 * from a small in-memory model of the local directory (users, groups, homes, processes).
 *
 * What this proves: our argv, our stdin payloads, the order of steps, our parsing of the
 * answers, our checks and error mapping, and that the password never reaches an argv.
 * What it does NOT prove: that macOS answers like the model. The model's answers are taken
 * from man pages, Apple's 10.5-era DSTools sources and third-party tools (Chef, Salt, jamf and
 * Nix installer scripts); each such assumption is marked ⚠️ where it is modelled below.
 *
 * To check on a real Mac (as root), in the order the backend relies on them:
 *  1. the tools live at the MAC_BIN paths;
 *  2. `sysadminctl -addUser N -fullName 'jit-access grant=G' -home /Users/N` (no -password) creates
 *     the record (uid ≥ 501, PrimaryGroupID 20, home made, RealName exactly the tag), and what
 *     password state it leaves for the instant before -disableuser (empty? unusable?);
 *  3. sysadminctl exits 0 on failure (name taken, not root) and says "should be run as root";
 *  4. `dscl -plist . -read /Users/N UniqueID RealName AuthenticationAuthority` prints a plist dict of
 *     dsAttrTypeStandard:KEY → array of strings; a missing record: non-zero exit + eDSRecordNotFound
 *     (-14136), for /Groups too; an empty group: "No such key: GroupMembership", no plist, exit 0;
 *  5. `pwpolicy -u N -n /Local/Default -disableuser` runs without a prompt, adds ;DisabledUser; to
 *     AuthenticationAuthority, and that blocks loginwindow, ssh and su; -enableuser removes it (if
 *     not, the `dscl . -delete … AuthenticationAuthority ';DisabledUser;'` fallback works);
 *  6. `dscl -q .` reads non-TTY stdin, `passwd /Users/N PW` as root needs no old password, `quit`
 *     ends, the exit status stays 0 on failure (errors only as text), words split on spaces;
 *  7. `dscl . -readpl /Users/N accountPolicyData passwordLastSetTime` prints "passwordLastSetTime: F"
 *     and F grows with each passwd; setting the password keeps ;DisabledUser;;
 *  8. `pwpolicy … -setpolicy 'usingHardExpirationDate=1 hardExpireDateGMT=MM/DD/YY'` is accepted
 *     (deprecated), read back by -getpolicy as key=value words (YY or YYYY), and ENFORCED from
 *     00:00 GMT of that day; what an expired account then looks like, and whether a new date plus
 *     -enableuser revives it;
 *  9. `dseditgroup -o create -q jit-managed` and `-o edit -q -a|-d N -t user G` act on the local
 *     node without prompting; `-o checkmember -m N G` answers "yes …"/exit 0 or "no …"/non-zero,
 *     staff is "yes" for every local user, admin "no" for a new account;
 * 10. `launchctl bootout gui/UID` / `user/UID` end the login session and background domain and
 *     fail harmlessly when absent; BSD `pgrep`/`pkill -KILL -U|-u UID` exit 0/1;
 * 11. `sysadminctl -deleteUser N` removes the record and /Users/N (and which group entries);
 *     `dscl . -delete /Groups/G GroupMembership N` removes a stale name after the record is gone.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Group } from '../../protocol/groups.ts';
import { bashSyntaxError, bashWords, shellLine, shellQuote } from '../../test/support/shellQuote.ts';
import { newPassword as agentPassword } from '../credentials.ts';
import { accountBackendContract, inAnHour, newPassword as contractPassword, rejectsWith } from './contract.ts';
import { ExecError, type RunResult, type Runner } from './exec.ts';
import { backstopDate, dsclPasswdScript, MAC_BIN, MAC_PASSWORD, MacBackend, MARKER_GROUP, parseDsclPlist } from './macos.ts';

// ------------------------------------------------------------------ the model

interface Call {
  file: string;
  argv: string[];
  stdin?: string;
}
interface FakeUser {
  uid: number;
  gid: number;
  realName: string;
  home: string;
  auth: string[];
  password?: string;
  passwordSetAt?: number;
  policy: Map<string, string>;
}
interface FakeProc {
  ruid: number;
  euid: number;
  /** launchd domain the process lives in: the login session, the background domain, or neither. */
  domain: 'gui' | 'user' | 'none';
  alive: boolean;
}
type Out = { code: number; stdout?: string; stderr?: string };

const DISABLED = ';DisabledUser;';
// ⚠️ dscl's exit status is -(DS status) truncated to 8 bits: -14136 → 56, -14120 → 40 (DSTools source).
const NOT_FOUND: Out = { code: 56, stderr: '<dscl_cmd> DS Error: -14136 (eDSRecordNotFound)\n' };
const DENIED: Out = { code: 40, stderr: '<dscl_cmd> DS Error: -14120 (eDSPermissionError)\n' };
const STAMP = '2030-01-01 00:00:00.000 sysadminctl[4242:4242]';

/** Every call of every model in this file, for the final bash check. */
const allCalls: Call[] = [];

class FakeMac {
  readonly users = new Map<string, FakeUser>();
  readonly groups = new Map<string, { gid: number; members: Set<string> }>([
    ['admin', { gid: 80, members: new Set(['root']) }],
    ['staff', { gid: 20, members: new Set(['root']) }],
    ['wheel', { gid: 0, members: new Set(['root']) }],
  ]);
  readonly homes = new Set<string>(['/Users/Shared']);
  readonly procs = new Map<number, FakeProc>();
  readonly calls: Call[] = [];
  /** Commands the model does not know: each is a test failure (see `assertAllModelled`). */
  readonly unmodelled: string[] = [];
  readonly faults = {
    notRoot: false, // sysadminctl/dscl/dseditgroup/pwpolicy writes refused
    addUserSilentlyFails: false, // sysadminctl -addUser: message, exit 0, nothing created
    deleteUserSilentlyFails: false, // sysadminctl -deleteUser: exit 0, nothing deleted
    deleteKeepsHome: false,
    deleteLeavesMemberships: false,
    readFails: false, // dscl -read: opendirectoryd unreachable
    passwdSilentlyIgnored: false, // dscl command mode: no output, nothing changed
    passwdEchoesLine: false, // dscl command mode: an error message that quotes the input line
    passwdReenables: false, // setting the password drops ;DisabledUser;
    enableuserKeepsTag: false, // pwpolicy -enableuser leaves ;DisabledUser; in place
    setpolicyIgnored: false,
    getpolicyFourDigitYear: false,
  };
  /** Runs when sysadminctl -addUser starts: lets a test play a second administrator. */
  beforeAddUser?: (name: string) => void;
  private clock = 1_900_000_000;
  private nextUid = 501;
  private nextGid = 700;
  private nextPid = 2000;

  readonly run: Runner = async (file, argv, opts = {}) => {
    const call: Call = { file, argv: [...argv], ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}) };
    this.calls.push(call);
    allCalls.push(call);
    const out = this.dispatch(file, argv, opts.stdin);
    const result: RunResult = { code: out.code, stdout: out.stdout ?? '', stderr: out.stderr ?? '' };
    // Same contract as exec.ts's run: exit codes outside okCodes reject with ExecError.
    if (!(opts.okCodes ?? [0]).includes(result.code)) throw new ExecError(file, result);
    return result;
  };

  /** What sysadminctl -addUser leaves: uid ≥ 501, primary group staff, a ShadowHash authority. */
  addUser(name: string, realName: string, uid = this.nextUid++): FakeUser {
    // ⚠️ Modelled pessimistically: no -password = an EMPTY password until dscl passwd runs.
    const u: FakeUser = { uid, gid: 20, realName, home: `/Users/${name}`, auth: [';ShadowHash;HASHLIST:<SALTED-SHA512-PBKDF2,SRP-RFC5054-4096-SHA512-PBKDF2>'], password: '', policy: new Map() };
    this.users.set(name, u);
    this.homes.add(u.home);
    return u;
  }

  spawn(uid: number, opts: { euidOnly?: boolean; domain?: FakeProc['domain'] } = {}): { pid: number; alive(): boolean; kill(): void } {
    const pid = this.nextPid++;
    const p: FakeProc = { ruid: opts.euidOnly ? 0 : uid, euid: uid, domain: opts.domain ?? 'none', alive: true };
    this.procs.set(pid, p);
    return { pid, alive: () => p.alive, kill: () => void (p.alive = false) };
  }

  /** Membership as the membership API sees it: listed, or the primary group. */
  isMember(name: string, group: string): boolean {
    const u = this.users.get(name);
    const g = this.groups.get(group);
    return !!u && !!g && (g.members.has(name) || u.gid === g.gid);
  }

  disabled(name: string): boolean {
    return this.users.get(name)!.auth.includes(DISABLED);
  }

  assertAllModelled(): void {
    assert.deepEqual(this.unmodelled, [], 'the backend ran commands the model does not know');
  }

  private dispatch(file: string, a: string[], stdin: string | undefined): Out {
    switch (file) {
      case MAC_BIN.sysadminctl:
        return this.sysadminctl(file, a);
      case MAC_BIN.dscl:
        return stdin === undefined ? this.dscl(file, a) : this.dsclCommandMode(file, a, stdin);
      case MAC_BIN.dseditgroup:
        return this.dseditgroup(file, a);
      case MAC_BIN.pwpolicy:
        return this.pwpolicy(file, a);
      case MAC_BIN.launchctl:
        return this.launchctl(file, a);
      case MAC_BIN.pgrep:
      case MAC_BIN.pkill:
        return this.signal(file, a);
      case MAC_BIN.test:
        return a.length === 2 && a[0] === '-e' ? { code: this.homes.has(a[1]!) ? 0 : 1 } : this.unknown(file, a);
    }
    return this.unknown(file, a);
  }

  private unknown(file: string, a: string[]): Out {
    this.unmodelled.push(shellLine([file, ...a]));
    return { code: 127, stderr: 'unmodelled command\n' };
  }

  // ⚠️ sysadminctl reports everything on stderr and exits 0 even on failure (Chef's provider).
  private sysadminctl(file: string, a: string[]): Out {
    if (a[0] === '-addUser' && a.length === 6 && a[2] === '-fullName' && a[4] === '-home' && a[5] === `/Users/${a[1]}`) {
      const [name, fullName] = [a[1]!, a[3]!];
      if (this.faults.notRoot) return { code: 0, stderr: `${STAMP} sysadminctl should be run as root, or in interactive mode! (errAuthorizationInteractionNotAllowed)\n` };
      this.beforeAddUser?.(name);
      if (this.faults.addUserSilentlyFails) return { code: 0, stderr: `${STAMP} ### Error:-14009 Creating user record failed\n` };
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
      this.users.delete(name);
      if (!this.faults.deleteKeepsHome) this.homes.delete(u.home);
      if (!this.faults.deleteLeavesMemberships) for (const g of this.groups.values()) g.members.delete(name);
      return { code: 0, stderr: `${STAMP} Deleting record for ${name}\n` };
    }
    return this.unknown(file, a);
  }

  private record(recPath: string): Map<string, string[]> | null {
    const [, kind, name] = /^\/(Users|Groups)\/([^/]+)$/.exec(recPath) ?? [];
    if (kind === 'Users') {
      const u = this.users.get(name!);
      if (!u) return null;
      return new Map([
        ['RecordName', [name!]], ['UniqueID', [String(u.uid)]], ['PrimaryGroupID', [String(u.gid)]], ['RealName', [u.realName]],
        ['NFSHomeDirectory', [u.home]], ['UserShell', ['/bin/zsh']], ['AuthenticationAuthority', [...u.auth]],
      ]);
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
    if (a[0] === '.' && a[1] === '-readpl' && a.length === 5 && a[3] === 'accountPolicyData' && a[4] === 'passwordLastSetTime') {
      const u = this.users.get(a[2]!.replace(/^\/Users\//, ''));
      if (!u) return NOT_FOUND;
      // ⚠️ Output "key: value" (Salt's mac_shadow); missing key: an error and a non-zero exit.
      return u.passwordSetAt === undefined ? { code: 1, stderr: 'No such plist path: passwordLastSetTime\n' } : { code: 0, stdout: `passwordLastSetTime: ${u.passwordSetAt}\n` };
    }
    if (a[0] === '.' && a[1] === '-delete' && a.length === 5) {
      if (this.faults.notRoot) return DENIED;
      const [recPath, key, value] = [a[2]!, a[3]!, a[4]!];
      if (recPath.startsWith('/Groups/') && key === 'GroupMembership') {
        const g = this.groups.get(recPath.slice(8));
        if (!g) return NOT_FOUND;
        g.members.delete(value);
        return { code: 0 };
      }
      if (recPath.startsWith('/Users/') && key === 'AuthenticationAuthority') {
        const u = this.users.get(recPath.slice(7));
        if (!u) return NOT_FOUND;
        u.auth = u.auth.filter((v) => v !== value);
        return { code: 0 };
      }
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
      else if (!this.faults.passwdSilentlyIgnored) {
        u.password = words[2]!;
        u.passwordSetAt = (this.clock += 1) + 0.5;
        if (this.faults.passwdReenables) u.auth = u.auth.filter((v) => v !== DISABLED);
      }
    }
    return { code: 0, stderr: err.join('') };
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
    const writes = command !== '-getpolicy';
    if (this.faults.notRoot && writes) return { code: 1, stderr: 'Permission denied\n' };
    if (command === '-disableuser' && !rest.length) {
      if (!u.auth.includes(DISABLED)) u.auth.push(DISABLED);
      return { code: 0 };
    }
    if (command === '-enableuser' && !rest.length) {
      if (!this.faults.enableuserKeepsTag) u.auth = u.auth.filter((v) => v !== DISABLED);
      return { code: 0 };
    }
    if (command === '-setpolicy' && rest.length === 1) {
      if (!this.faults.setpolicyIgnored) {
        for (const word of rest[0]!.split(' ')) {
          const m = /^(\w+)=(\S+)$/.exec(word);
          if (!m) return { code: 1, stderr: `invalid policy ${word}\n` };
          u.policy.set(m[1]!, m[2]!);
        }
      }
      return { code: 0 };
    }
    if (command === '-getpolicy' && !rest.length) {
      const words = [...u.policy].map(([k, v]) => `${k}=${this.faults.getpolicyFourDigitYear && k === 'hardExpireDateGMT' ? v.replace(/\/(\d\d)$/, '/20$1') : v}`);
      return { code: 0, stdout: `Getting policy for ${name} /Local/Default\n\n${['isDisabled=0', ...words].join(' ')}\n` };
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
    const args = file === MAC_BIN.pkill ? (a[0] === '-KILL' ? a.slice(1) : null) : a;
    if (!args || args.length !== 2 || (args[0] !== '-U' && args[0] !== '-u')) return this.unknown(file, a);
    if (!/^\d+$/.test(args[1]!)) return { code: 2, stderr: `${path.basename(file)}: invalid user name\n` };
    const uid = Number(args[1]);
    const hits = [...this.procs].filter(([, p]) => p.alive && (args[0] === '-U' ? p.ruid : p.euid) === uid);
    if (file === MAC_BIN.pkill) for (const [, p] of hits) p.alive = false;
    return hits.length ? { code: 0, stdout: file === MAC_BIN.pgrep ? hits.map(([pid]) => `${pid}\n`).join('') : '' } : { code: 1 };
  }
}

/** dscl -plist output for one record. */
function plist(entries: [string, string[]][]): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const body = entries.map(([k, vs]) => `\t<key>dsAttrTypeStandard:${k}</key>\n\t<array>\n${vs.map((v) => `\t\t<string>${esc(v)}</string>\n`).join('')}\t</array>\n`).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n<dict>\n${body}</dict>\n</plist>\n`;
}

/**
 * How dscl's command mode splits a line: a port of dscl_get_string() from Apple's DSTools
 * dscl.m (10.5 era; current sources are not published ⚠️), quirks included — a quoted word
 * ends at EITHER quote character, and a backslash at a word's first position is kept.
 */
function dsclTokens(line: string): string[] {
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
    let esc = 0;
    for (;;) {
      const c = line[x + i];
      if (c === undefined) break;
      if (quote && (c === '"' || c === "'")) break;
      if (!quote && (c === ' ' || c === '\t')) break;
      if (c === '\\') {
        if (esc === 0) esc = i;
        i++;
        if (line[x + i] === undefined) break;
      }
      i++;
    }
    const p = [...line.slice(x, x + i)];
    s += quote ? i + 1 : i;
    while (esc !== 0) {
      let j = esc + 1;
      if (p[j] === '\\') j++;
      esc = 0;
      for (; j < p.length; j++) {
        p[j - 1] = p[j]!;
        if (p[j] === '\\' && esc === 0) esc = j - 1;
      }
      p.length = j - 1;
    }
    words.push(p.join(''));
  }
}

// ------------------------------------------------------------------ helpers

function recorded(): { mac: FakeMac; backend: MacBackend } {
  const mac = new FakeMac();
  return { mac, backend: new MacBackend({ run: mac.run }) };
}

/** Random, inside MAC_PASSWORD, with the shell metacharacters that mean nothing to dscl. */
const macPassword = (): string => `P:${randomBytes(12).toString('base64')}$(x)\`y\`;&|<>!#%`;

const spec = (name: string, group: Group = 'Administrators', grantId = `grant-${name}`, expiresAt = inAnHour()) => ({ name, group, grantId, expiresAt });

/** Calls as shell lines, stdin shown as a here-string placeholder (never its content). */
const lines = (calls: Call[]) => calls.map((c) => shellLine([c.file, ...c.argv]) + (c.stdin === undefined ? '' : ' <<< STDIN'));

// ------------------------------------------------------------------ tests

accountBackendContract('macos (recorded)', async () => {
  const { mac, backend } = recorded();
  return {
    backend,
    newPassword: macPassword,
    spawnAs: async (id: string) => mac.spawn(Number(id)),
    createUnmanaged: async (name: string) => void mac.addUser(name, 'Somebody Else'),
    cleanup: async () => mac.assertAllModelled(),
  };
});

describe('MacBackend (recorded macOS)', function () {
  it('creates with these commands, in this order', async () => {
    const { mac, backend } = recorded();
    const info = await backend.createDisabled(spec('jtgolden', 'Administrators', 'g-1', new Date('2030-03-10T22:00:00Z')), macPassword());
    assert.deepEqual(info, { name: 'jtgolden', id: '501', enabled: false, managed: true, groups: ['Administrators'] });
    const read = `/usr/bin/dscl -plist . -read /Users/jtgolden UniqueID RealName AuthenticationAuthority`;
    const member = (g: string) => `/usr/sbin/dseditgroup -o checkmember -m jtgolden ${g}`;
    const marker = `/usr/bin/dscl -plist . -read /Groups/jit-managed GroupMembership`;
    assert.deepEqual(lines(mac.calls), [
      read, // absent
      marker, // absent: create it
      '/usr/sbin/dseditgroup -o create -q jit-managed',
      marker,
      "/usr/sbin/sysadminctl -addUser jtgolden -fullName 'jit-access grant=g-1' -home /Users/jtgolden",
      read, // created, with our tag
      read, // enabled: disable at once
      '/usr/bin/pwpolicy -u jtgolden -n /Local/Default -disableuser',
      read,
      '/usr/sbin/dseditgroup -o edit -q -a jtgolden -t user jit-managed',
      member('admin'),
      '/usr/sbin/dseditgroup -o edit -q -a jtgolden -t user admin',
      member('admin'),
      '/usr/bin/dscl . -readpl /Users/jtgolden accountPolicyData passwordLastSetTime',
      '/usr/bin/dscl -q . <<< STDIN',
      '/usr/bin/dscl . -readpl /Users/jtgolden accountPolicyData passwordLastSetTime',
      read, // still disabled
      "/usr/bin/pwpolicy -u jtgolden -n /Local/Default -setpolicy 'usingHardExpirationDate=1 hardExpireDateGMT=03/11/30'",
      '/usr/bin/pwpolicy -u jtgolden -n /Local/Default -getpolicy',
      read,
      member('admin'),
      marker,
    ]);
    mac.assertAllModelled();
  });

  it('puts the password only on stdin, as one passwd line that dscl splits into three words', async () => {
    const { mac, backend } = recorded();
    const [first, second] = [macPassword(), macPassword()];
    await backend.createDisabled(spec('jtstdin', 'Users'), first);
    await backend.setPassword('jtstdin', second);
    assert.equal(mac.users.get('jtstdin')!.password, second);
    for (const pw of [first, second]) {
      assert.ok(mac.calls.every((c) => !c.argv.some((a) => a.includes(pw))), 'password in an argv');
    }
    const withStdin = mac.calls.filter((c) => c.stdin !== undefined);
    assert.deepEqual(withStdin.map((c) => [c.file, ...c.argv]), [[MAC_BIN.dscl, '-q', '.'], [MAC_BIN.dscl, '-q', '.']]);
    assert.deepEqual(withStdin.map((c) => c.stdin), [`passwd /Users/jtstdin ${first}\nquit\n`, `passwd /Users/jtstdin ${second}\nquit\n`]);
    for (const [i, pw] of [first, second].entries()) {
      const [line, quit, rest] = withStdin[i]!.stdin!.split('\n');
      assert.deepEqual([dsclTokens(line!), quit, rest], [['passwd', '/Users/jtstdin', pw], 'quit', '']);
    }
    assert.equal(mac.disabled('jtstdin'), true);
  });

  it('refuses a password dscl could misread (newline, quotes, spaces…) before running anything', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtpw'), macPassword());
    const bad = [
      'abc\npasswd /Users/root owned', 'abc\rdef', 'abc\0def', 'abc def', 'abc\tdef', 'abc"def', "abc'def", 'abc\\def',
      'pässword', 'abc\u2019def', '', 'x'.repeat(129), contractPassword(),
    ];
    mac.calls.length = 0;
    for (const pw of bad) {
      await rejectsWith(backend.createDisabled(spec('jtpwnew'), pw), 'COMMAND_FAILED');
      await rejectsWith(backend.setPassword('jtpw', pw), 'COMMAND_FAILED');
      assert.throws(() => dsclPasswdScript('jtpw', pw), /printable ASCII/);
    }
    assert.equal(mac.calls.filter((c) => c.stdin !== undefined).length, 0);
    assert.ok(mac.calls.every((c) => c.file === MAC_BIN.dscl || c.argv.includes('checkmember')), 'only lookups ran');
    assert.equal(mac.users.has('jtpwnew'), false);
    // Why the restriction: under dscl's own splitter, the contract's hostile password would
    // reach dscl as other words than the one we meant.
    const hostile = contractPassword();
    assert.notDeepEqual(dsclTokens(`passwd /Users/jtpw ${hostile}`), ['passwd', '/Users/jtpw', hostile]);
  });

  it('accepts every password the agent generates', () => {
    for (let i = 0; i < 500; i++) {
      const pw = agentPassword();
      assert.match(pw, MAC_PASSWORD);
      assert.deepEqual(dsclTokens(`passwd /Users/jtx ${pw}`), ['passwd', '/Users/jtx', pw]);
    }
  });

  it('rejects hostile names and grant ids without running anything', async () => {
    const { mac, backend } = recorded();
    const hostile = ['g$(touch x)', 'g`id`', "g'x", 'g"x', 'g\u2018x\u2019', 'g\u201cx\u201d', 'g\nx', 'g x', 'g;x', '', 'g'.repeat(65)];
    for (const grantId of hostile) await rejectsWith(backend.createDisabled(spec('jtgrant', 'Users', grantId), macPassword()), 'COMMAND_FAILED');
    for (const name of hostile) await rejectsWith(backend.createDisabled(spec(name), macPassword()), 'INVALID_NAME');
    assert.deepEqual(mac.calls, []);
  });

  it('renders hostile values as single shell words that bash never interprets', () => {
    const marker = path.join(os.tmpdir(), `jit-mac-${randomBytes(6).toString('hex')}`);
    const hostile = [
      `$(touch ${marker})`, `\`touch ${marker}\``, `;touch ${marker}`, `'; touch ${marker}; '`, `"$(touch ${marker})"`,
      '\u2018x\u2019 \u201cy\u201d', 'a\nb', 'a\rb', 'tab\there', '*', '~', '{a,b}', 'x=y', '!!', '$HOME', "it's", '\\', '',
    ];
    const argv = [MAC_BIN.dscl, ...hostile];
    const line = shellLine(argv);
    assert.equal(bashSyntaxError(line), null);
    assert.deepEqual(bashWords([line]), [argv]);
    assert.equal(existsSync(marker), false);
    assert.throws(() => shellQuote('a\0b'), /NUL/);
  });

  it('checks sysadminctl with dscl: silent failures and refusals are caught', async () => {
    const { mac, backend } = recorded();
    mac.faults.addUserSilentlyFails = true;
    await rejectsWith(backend.createDisabled(spec('jtsilent'), macPassword()), 'COMMAND_FAILED');
    assert.equal(mac.users.has('jtsilent'), false);
    mac.faults.addUserSilentlyFails = false;

    mac.faults.notRoot = true;
    await rejectsWith(backend.createDisabled(spec('jtnoroot'), macPassword()), 'ACCESS_DENIED');
    mac.faults.notRoot = false;

    await backend.createDisabled(spec('jtkeep'), macPassword());
    mac.faults.deleteUserSilentlyFails = true;
    await rejectsWith(backend.delete('jtkeep'), 'COMMAND_FAILED');
    assert.equal((await backend.lookup('jtkeep'))?.managed, true);
    assert.equal(mac.isMember('jtkeep', 'admin'), false, 'admin rights end even when the deletion fails');
    mac.faults.deleteUserSilentlyFails = false;
    await backend.delete('jtkeep');
    assert.equal(await backend.lookup('jtkeep'), null);
    mac.assertAllModelled();
  });

  it('never takes over an account that appears under the same name while creating', async () => {
    const { mac, backend } = recorded();
    mac.beforeAddUser = (name) => {
      mac.addUser(name, 'Someone Else');
      mac.groups.get(MARKER_GROUP)!.members.add(name); // even a marker-group member is not ours without the tag
    };
    await rejectsWith(backend.createDisabled(spec('jtrace'), macPassword()), 'ALREADY_EXISTS');
    const theirs = mac.users.get('jtrace')!;
    assert.equal(theirs.realName, 'Someone Else');
    assert.equal(mac.disabled('jtrace'), false);
    assert.equal(mac.isMember('jtrace', 'admin'), false);
    const touching = mac.calls.filter((c) => c.argv.includes('jtrace') || c.argv.includes('/Users/jtrace'));
    assert.ok(touching.every((c) => c.file === MAC_BIN.dscl || c.file === MAC_BIN.sysadminctl), lines(touching).join('\n'));
    assert.ok(!mac.calls.some((c) => c.argv[0] === '-deleteUser'));
  });

  it('deletes the half-made account when a later step fails', async () => {
    const { mac, backend } = recorded();
    mac.faults.passwdSilentlyIgnored = true; // dscl says nothing and exits 0, but nothing changed
    await rejectsWith(backend.createDisabled(spec('jthalf'), macPassword()), 'COMMAND_FAILED');
    assert.equal(mac.users.has('jthalf'), false);
    assert.equal(mac.homes.has('/Users/jthalf'), false);
    assert.equal(mac.isMember('jthalf', 'admin'), false);
    assert.equal(mac.groups.get(MARKER_GROUP)!.members.has('jthalf'), false);
  });

  it("keeps the password out of errors even when dscl echoes its input", async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtecho'), macPassword());
    mac.faults.passwdEchoesLine = true;
    const pw = macPassword();
    await assert.rejects(backend.setPassword('jtecho', pw), (e: unknown) => {
      assert.ok(e instanceof Error && !e.message.includes(pw) && /DS error/.test(e.message), String(e));
      return true;
    });
  });

  it('keeps the account disabled when setting the password re-enabled it', async () => {
    const { mac, backend } = recorded();
    mac.faults.passwdReenables = true;
    await backend.createDisabled(spec('jtreen'), macPassword());
    assert.equal(mac.disabled('jtreen'), true);
    await backend.setPassword('jtreen', macPassword());
    assert.equal(mac.disabled('jtreen'), true);
    await backend.setEnabled('jtreen', true, inAnHour());
    await backend.setPassword('jtreen', macPassword());
    assert.equal((await backend.lookup('jtreen'))?.enabled, true);
  });

  it('sets the hard-expiry backstop to the UTC day after expiresAt, re-sets it on enable, and checks it', async () => {
    assert.equal(backstopDate(new Date('2030-03-10T00:00:00Z')), '03/11/30');
    assert.equal(backstopDate(new Date('2030-12-31T23:59:59.999Z')), '01/01/31');
    assert.throws(() => backstopDate(new Date('nonsense')), /invalid expiry/);
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtexp', 'Users', 'g1', new Date('2030-03-10T22:00:00Z')), macPassword());
    assert.equal(mac.users.get('jtexp')!.policy.get('hardExpireDateGMT'), '03/11/30');
    mac.faults.getpolicyFourDigitYear = true; // ⚠️ reported both ways: accept either
    await backend.setEnabled('jtexp', true, new Date('2031-07-04T01:00:00Z'));
    assert.deepEqual(Object.fromEntries(mac.users.get('jtexp')!.policy), { usingHardExpirationDate: '1', hardExpireDateGMT: '07/05/31' });
    await backend.setEnabled('jtexp', false);
    mac.faults.setpolicyIgnored = true;
    await rejectsWith(backend.setEnabled('jtexp', true, new Date('2032-01-01T00:00:00Z')), 'COMMAND_FAILED');
    assert.equal(mac.disabled('jtexp'), true, 'not enabled without its backstop');
    await rejectsWith(backend.setEnabled('jtexp', true), 'COMMAND_FAILED');
  });

  it('enables through dscl when pwpolicy -enableuser leaves ;DisabledUser; in place', async () => {
    const { mac, backend } = recorded();
    mac.faults.enableuserKeepsTag = true;
    await backend.createDisabled(spec('jtenable'), macPassword());
    await backend.setEnabled('jtenable', true, inAnHour());
    assert.equal(mac.disabled('jtenable'), false);
    assert.ok(mac.calls.some((c) => shellLine(c.argv) === ". -delete /Users/jtenable AuthenticationAuthority ';DisabledUser;'"));
  });

  it('maps groups: admin → Administrators (though staff is everyone’s), Users leaves admin', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtgrp', 'Users'), macPassword());
    assert.deepEqual((await backend.lookup('jtgrp'))?.groups, ['Users']);
    assert.equal(mac.groups.get('admin')!.members.has('jtgrp'), false);
    await backend.setGroups('jtgrp', 'Administrators');
    assert.deepEqual((await backend.lookup('jtgrp'))?.groups, ['Administrators']);
    await backend.setGroups('jtgrp', 'Users');
    assert.equal(mac.isMember('jtgrp', 'admin'), false);
    assert.equal(mac.isMember('jtgrp', 'staff'), true);
    await rejectsWith(backend.setGroups('jtgrp', 'Power Users'), 'UNSUPPORTED_GROUP');
  });

  it('logs off GUI, background and setuid processes, counting them before bootout', async () => {
    const { mac, backend } = recorded();
    const { id } = await backend.createDisabled(spec('jtoff'), macPassword());
    const uid = Number(id);
    const procs = [mac.spawn(uid, { domain: 'gui' }), mac.spawn(uid, { domain: 'user' }), mac.spawn(uid), mac.spawn(uid, { euidOnly: true })];
    const bystander = mac.spawn(uid + 1);
    mac.calls.length = 0;
    assert.deepEqual(await backend.logoff('jtoff'), { ended: 4 });
    assert.ok(procs.every((p) => !p.alive()) && bystander.alive());
    assert.deepEqual(lines(mac.calls).slice(-6), [
      `/usr/bin/pgrep -U ${uid}`, `/usr/bin/pgrep -u ${uid}`, `/bin/launchctl bootout gui/${uid}`, `/bin/launchctl bootout user/${uid}`,
      `/usr/bin/pkill -KILL -U ${uid}`, `/usr/bin/pkill -KILL -u ${uid}`,
    ]);
    assert.deepEqual(await backend.logoff('jtoff'), { ended: 0 });
  });

  it('refuses to kill or delete by a uid below 501', async () => {
    const { mac, backend } = recorded();
    for (const [name, uid] of [['jtroot', 0], ['jtsys', 300]] as const) {
      mac.addUser(name, 'jit-access grant=g1', uid);
      mac.groups.set(MARKER_GROUP, mac.groups.get(MARKER_GROUP) ?? { gid: 799, members: new Set() });
      mac.groups.get(MARKER_GROUP)!.members.add(name);
      assert.equal((await backend.lookup(name))?.managed, true);
      const victim = mac.spawn(uid);
      mac.calls.length = 0;
      await rejectsWith(backend.logoff(name), 'COMMAND_FAILED');
      await rejectsWith(backend.delete(name), 'COMMAND_FAILED');
      assert.ok(victim.alive());
      assert.ok(mac.calls.every((c) => c.file === MAC_BIN.dscl || c.file === MAC_BIN.dseditgroup), lines(mac.calls).join('\n'));
    }
  });

  it('delete: refuses while processes run, reports a home left behind, purges stale memberships', async () => {
    const { mac, backend } = recorded();
    const { id } = await backend.createDisabled(spec('jtdel'), macPassword());
    const p = mac.spawn(Number(id));
    await rejectsWith(backend.delete('jtdel'), 'LOGGED_IN');
    assert.ok(mac.users.has('jtdel'));
    p.kill();
    mac.faults.deleteKeepsHome = true;
    mac.faults.deleteLeavesMemberships = true;
    mac.groups.get('staff')!.members.add('jtdel');
    await rejectsWith(backend.delete('jtdel'), 'COMMAND_FAILED');
    assert.equal(mac.users.has('jtdel'), false);
    for (const g of ['admin', 'staff', MARKER_GROUP]) assert.equal(mac.groups.get(g)!.members.has('jtdel'), false, g);
    assert.ok(mac.homes.has('/Users/jtdel'));
    await backend.delete('jtdel'); // the account is gone: a retry succeeds
  });

  it('needs both markers: the jit-managed group and the RealName tag', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtours'), macPassword());
    mac.addUser('jtgrouponly', 'Somebody');
    mac.groups.get(MARKER_GROUP)!.members.add('jtgrouponly');
    mac.addUser('jttagonly', 'jit-access grant=g1');
    mac.groups.get(MARKER_GROUP)!.members.add('Not A Name'); // an admin's stray entry: never looked up
    for (const name of ['jtgrouponly', 'jttagonly']) {
      assert.equal((await backend.lookup(name))?.managed, false);
      await rejectsWith(backend.delete(name), 'NOT_MANAGED');
      await rejectsWith(backend.setEnabled(name, true, inAnHour()), 'NOT_MANAGED');
    }
    mac.calls.length = 0;
    assert.deepEqual((await backend.listManaged()).map((i) => i.name), ['jtours']);
    assert.ok(mac.calls.every((c) => !c.argv.some((a) => a.includes('Not A Name'))));
  });

  it('treats a failed dscl read as an error, never as "absent"', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtread'), macPassword());
    mac.faults.readFails = true;
    await rejectsWith(backend.lookup('jtread'), 'COMMAND_FAILED');
    await rejectsWith(backend.delete('jtread'), 'COMMAND_FAILED');
    await rejectsWith(backend.listManaged(), 'COMMAND_FAILED');
    mac.faults.readFails = false;
    assert.equal((await backend.lookup('jtread'))?.managed, true);
  });

  it('parses dscl plists strictly', () => {
    const attrs = parseDsclPlist(plist([['RealName', ['a &amp; b <c>']], ['GroupMembership', ['x', 'y']]]).replace('&amp;amp;', '&#38;'));
    assert.deepEqual(Object.fromEntries(attrs), { RealName: ['a & b <c>'], GroupMembership: ['x', 'y'] });
    assert.deepEqual(Object.fromEntries(parseDsclPlist('<plist version="1.0">\n<dict>\n<key>dsAttrTypeNative:IsHidden</key>\n<string>1</string>\n<key>E</key><array/>\n</dict>\n</plist>')), { IsHidden: ['1'], E: [] });
    assert.throws(() => parseDsclPlist('<plist version="1.0"><dict><key>K</key><data>AAAA</data></dict></plist>'), /unexpected content/);
    assert.throws(() => parseDsclPlist('No such key: RealName'), /no plist/);
  });

  // Last: sees every command the backend ran in this file, the contract suite's included.
  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    assert.ok(allCalls.length > 200, `only ${allCalls.length} commands recorded`);
    const argvs = [...new Map(allCalls.map((c) => [shellLine([c.file, ...c.argv]), [c.file, ...c.argv]])).entries()];
    const script = argvs.map(([line]) => line).join('\n');
    assert.equal(bashSyntaxError(script), null);
    assert.deepEqual(bashWords(argvs.map(([line]) => line)), argvs.map(([, argv]) => argv));
    // Every tool by absolute path, and the password nowhere in argv (all of them contain 'P:').
    assert.ok(allCalls.every((c) => Object.values(MAC_BIN).includes(c.file as never)));
    assert.ok(allCalls.every((c) => !c.argv.some((a) => a.startsWith('P:'))));
  });
});
