/**
 * A RECORDED macOS for the MacBackend tests: a Runner that records every argv and stdin and
 * answers from a small in-memory model of the local directory (users, groups), the file system
 * parts the backend touches (homes, temporary folders, spools, LaunchDaemons, sudoers:
 * fakeMacSudo.ts), processes, launchd's system domain (the backstop jobs: fakeMacLaunchd.ts) and
 * pwpolicy.
 *
 * What it proves: our argv, our stdin payloads, the order of steps, our parsing of the answers,
 * our checks and error mapping. What it does NOT prove: that macOS answers like the model. Each
 * modelled behaviour taken from man pages, Apple's published (10.5-era) DSTools sources or
 * third-party tools is marked ⚠️; agent/os/macos.test.ts lists what to check on a real Mac.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Group } from '../../protocol/groups.ts';
import { inAnHour } from '../../agent/os/contract.ts';
import { ExecError, type RunResult, type Runner } from '../../agent/os/exec.ts';
import { MAC_BIN, MacBackend } from '../../agent/os/macos.ts';
import { dscl, dsclCommandMode, dseditgroup, sysadminctl } from './fakeMacDscl.ts';
import { launchctl, LAUNCHD_TOOLS, signal, type LaunchdJob } from './fakeMacLaunchd.ts';
import { SUDO_TOOLS, SUDOERS_FILES } from './fakeMacSudo.ts';
import { authenticationAllowed, DISABLED, FILE_TOOLS, pwpolicy, SHADOW, type AuthPolicy } from './fakeMacTools.ts';
import { bashSyntaxError, bashWords, shellLine } from './shellQuote.ts';

export { dsclTokens, plist } from './fakeMacDscl.ts';
export { DISABLED, NO_TOKEN, readAccountPolicies, readPlistXml, TOKEN, type AuthPolicy } from './fakeMacTools.ts';
export { firingMinutes, LAUNCH_DAEMONS, type LaunchdJob } from './fakeMacLaunchd.ts';

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
export interface FsEntry {
  uid: number;
  type: 'Directory' | 'Regular File' | 'Symbolic Link';
  /** chflags uchg: not even root may delete it until the flag is cleared. */
  uchg?: boolean;
  /** Group and permission bits, where a test needs them (launchd checks a plist's). */
  gid?: number;
  mode?: number;
  /** The text of a file the backend writes and reads back (a launchd plist). */
  content?: string;
}
export interface FakeProc {
  ruid: number;
  euid: number;
  /** launchd domain the process lives in: the login session, the background domain, or neither. */
  domain: 'gui' | 'user' | 'none';
  alive: boolean;
  /** The parent's pid (1: launchd). */
  ppid: number;
}
export type Out = { code: number; stdout?: string; stderr?: string };

/**
 * Where the simulated tools live. Written out again on purpose, not imported from the backend's
 * MAC_BIN: a wrong path there must fail the tests, not be copied into the simulation.
 */
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
  install: '/usr/bin/install',
  cat: '/bin/cat',
  ls: '/bin/ls',
  ps: '/bin/ps',
  kill: '/bin/kill',
  visudo: '/usr/sbin/visudo',
  mv: '/bin/mv',
  date: '/bin/date',
  sleep: '/bin/sleep',
  sh: '/bin/sh',
} as const;

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
  readonly fs = new Map<string, FsEntry>([
    ...['/Users', '/Users/Shared', '/private/tmp', '/private/var/tmp', '/private/var/folders', '/private/var/at', '/private/var/at/tabs', '/private/var/at/jobs', '/private/var/mail', '/private/var/db/sudo/ts', '/Library', '/Library/LaunchDaemons'].map((p): [string, FsEntry] => [p, { uid: 0, type: 'Directory' }]),
    ...SUDOERS_FILES.map(([p, e]): [string, FsEntry] => [p, { ...e }]),
  ]);
  /** Mount points of other file systems (find -x must not descend into them). */
  readonly mounts = new Set<string>();
  readonly procs = new Map<number, FakeProc>();
  /** launchd's system domain: jobs by label. */
  readonly launchd = new Map<string, LaunchdJob>();
  readonly calls: Call[] = [];
  /** Commands the model does not know: each is a test failure (see `assertAllModelled`). */
  readonly unmodelled: string[] = [];
  readonly faults = {
    notRoot: false, // writes refused
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
    rmFails: new Set<string>(), // paths rm/find cannot delete (e.g. a volume is read-only)
    bootstrapFails: false, // launchctl bootstrap refuses the plist (5: Input/output error)
    launchdForgets: false, // launchctl print finds no job, loaded or not
    plistReadsBackChanged: false, // cat shows another plist than the one installed
    mvFails: false, // mv refuses the rename (Operation not permitted)
  };
  /** Runs before a command creates a user record: lets a test play a second administrator. */
  beforeRecordCreate?: (name: string) => void;
  /** When set, every command after this many recorded calls rejects: the agent died. */
  crashAfter?: number;
  /** The clock pwpolicy -authentication-allowed reads (ms since the epoch). */
  now = Date.now();
  private clock = 1_900_000_000;
  /** passwordLastSetTime's clock: grows with each password set. */
  tick(): number {
    return (this.clock += 1) + 0.5;
  }
  private nextUid = 501;
  private nextGid = 700;
  private nextPid = 2000;
  /** A gid no group has yet (dseditgroup -o create). */
  allocGid(): number {
    return this.nextGid++;
  }

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

  spawn(uid: number, opts: { euidOnly?: boolean; domain?: FakeProc['domain']; ppid?: number; ruid?: number } = {}): { pid: number; alive(): boolean; kill(): void } {
    const pid = this.nextPid++;
    const p: FakeProc = { ruid: opts.ruid ?? (opts.euidOnly ? 0 : uid), euid: uid, domain: opts.domain ?? 'none', alive: true, ppid: opts.ppid ?? 1 };
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
    return authenticationAllowed(this, name);
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
        return sysadminctl(this, file, a);
      case BIN.dscl:
        return stdin === undefined ? dscl(this, file, a) : dsclCommandMode(this, file, a, stdin);
      case BIN.dseditgroup:
        return dseditgroup(this, file, a);
      case BIN.pwpolicy:
        return pwpolicy(this, file, a);
      case BIN.launchctl:
        return launchctl(this, file, a);
      case BIN.pgrep:
      case BIN.pkill:
        return signal(this, file, a);
    }
    return (FILE_TOOLS[file] ?? LAUNCHD_TOOLS[file] ?? SUDO_TOOLS[file])?.(this, file, a) ?? this.unknown(file, a);
  }

  /** Records a command the model does not know (a test failure) and answers 127. */
  unknown(file: string, a: string[]): Out {
    this.unmodelled.push(shellLine([file, ...a]));
    return { code: 127, stderr: 'unmodelled command\n' };
  }

  /** The record of that name, made (empty) if missing: what dscl -create does first. */
  newRecord(name: string): FakeUser {
    this.beforeRecordCreate?.(name);
    const existing = this.users.get(name);
    if (existing) return existing;
    const u: FakeUser = { attrs: new Map(), legacyPolicy: new Map() };
    this.users.set(name, u);
    return u;
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
