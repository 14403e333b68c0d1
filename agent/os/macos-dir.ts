/**
 * The macOS backend's commands: reads and writes of the local directory (dscl, dseditgroup,
 * pwpolicy), processes (pgrep), and the checks that every result is read back.
 *
 * ⚠️ Written from documentation, Apple's published DSTools sources (10.5-era dscl) and
 * third-party tools (Chef, Salt, mkuser, jamf/Nix installer scripts): no Mac was available.
 * macos.test.ts lists what must be checked on a real one.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Group } from '../../protocol/groups.ts';
import { AccountError, type AccountErrorCode } from './backend.ts';
import { ExecError, type RunResult, type Runner } from './exec.ts';
import { expiryEpochSeconds, expiryPolicyPlist, parseDsclPlist, policyExpiry } from './macos-plist.ts';

/**
 * Absolute paths: the agent runs as root, so a PATH entry writable by someone else must not
 * be able to stand in for these tools. ⚠️ Paths as documented/seen in scripts, not checked on a Mac.
 */
export const MAC_BIN = {
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
  // Run by the backstop job's script, not by the agent:
  sh: '/bin/sh',
  date: '/bin/date',
  sleep: '/bin/sleep',
} as const;

/** The local directory node. pwpolicy defaults to the search node, which may reach a network directory. */
export const LOCAL_NODE = '/Local/Default';
/** The AuthenticationAuthority value of a disabled account (pwpolicy -disableuser ⚠️ per Chef, JumpCloud). */
export const DISABLED_USER = ';DisabledUser;';
/** Keeps macOS from granting the account a Secure Token (mkuser's notes, Apple's deployment guide ⚠️). */
export const NO_SECURE_TOKEN = ';DisabledTags;SecureToken';
/** The value of an account that holds a Secure Token ⚠️. */
const SECURE_TOKEN = ';SecureToken;';
/** Our own attribute (a native key of the local node ⚠️): the wizard group the grant asked for. */
export const GROUP_ATTR = 'jitAccessGroup';
/** Lowest uid sysadminctl hands out to a regular account; nothing is ever done by a lower uid. */
const MIN_UID = 501;

/** dscl's "record not found" (eDSRecordNotFound, -14136). ⚠️ text from DSTools sources/scripts. */
const NOT_FOUND = /eDSRecordNotFound|-14136/;
/** Permission failures as the tools phrase them. ⚠️ from sources and third-party reports. */
export const DENIED = /eDSPermissionError|-14120|[Pp]ermission denied|must be run as root|should be run as root|[Nn]ot authorized|errAuthorization/;
/** Every attribute the backend reads of a user, in one dscl call. */
const USER_KEYS = ['UniqueID', 'PrimaryGroupID', 'UserShell', 'NFSHomeDirectory', 'RealName', 'AuthenticationAuthority', GROUP_ATTR];

/** One user record as dscl reports it; `uid` is '' while a record being created has none yet. */
export interface UserRecord {
  uid: string;
  realName: string;
  authAuthority: string[];
  /** UserShell, NFSHomeDirectory, PrimaryGroupID as read (first value). */
  attrs: Map<string, string>;
  /** The wizard group our attribute records, if it is one. */
  group: Group | undefined;
}

/** Disabled: carries ;DisabledUser;. */
export const isDisabled = (rec: UserRecord): boolean => rec.authAuthority.includes(DISABLED_USER);
/** Enabled = could log in: a password (ShadowHash) and not disabled. A record still being made has neither. */
export const isEnabled = (rec: UserRecord): boolean => !isDisabled(rec) && rec.authAuthority.some((v) => v.startsWith(';ShadowHash;'));

/** The commands, each result read back. No policy: MacBackend decides. */
export class MacDirectory {
  constructor(private readonly run: Runner) {}

  /**
   * `dscl -plist . -read /Users/NAME …`: null only for eDSRecordNotFound.
   * Why not "any non-zero exit = absent": a failed read (permissions, opendirectoryd down)
   * would then make delete() report success for an account that is still there.
   */
  async readUser(name: string): Promise<UserRecord | null> {
    const r = await this.exec(MAC_BIN.dscl, ['-plist', '.', '-read', `/Users/${name}`, ...USER_KEYS]);
    if (r.code !== 0) {
      if (NOT_FOUND.test(r.stdout + r.stderr)) return null;
      throw failure(`reading ${name}`, r);
    }
    // ⚠️ Keys the record lacks: "No such key: K"; none of them there: no plist at all (a record
    // we are still creating).
    const attrs = r.stdout.includes('<plist') ? parseDsclPlist(r.stdout) : new Map<string, string[]>();
    const uid = attrs.get('UniqueID')?.[0] ?? '';
    if (uid !== '' && !/^\d+$/.test(uid)) throw new AccountError('COMMAND_FAILED', `${name}: UniqueID ${uid} is not a number`);
    const group = attrs.get(GROUP_ATTR)?.[0];
    return {
      uid,
      realName: attrs.get('RealName')?.[0] ?? '',
      authAuthority: attrs.get('AuthenticationAuthority') ?? [],
      attrs: new Map(['PrimaryGroupID', 'UserShell', 'NFSHomeDirectory'].flatMap((k) => (attrs.get(k)?.[0] === undefined ? [] : [[k, attrs.get(k)![0]!] as [string, string]]))),
      group: group === 'Administrators' || group === 'Users' ? group : undefined,
    };
  }

  async mustReadUser(name: string): Promise<UserRecord> {
    const rec = await this.readUser(name);
    if (!rec) throw new AccountError('NOT_FOUND', `${name} disappeared`);
    return rec;
  }

  /** `dscl . -list /Users UniqueID`: [name, uid] of every local record that has one ⚠️. */
  async uids(): Promise<[string, string][]> {
    const r = await this.mustRun(MAC_BIN.dscl, ['.', '-list', '/Users', 'UniqueID'], 'listing uids');
    return r.stdout.split('\n').flatMap((l) => {
      const m = /^(\S+)\s+(-?\d+)\s*$/.exec(l);
      return m ? [[m[1]!, m[2]!] as [string, string]] : [];
    });
  }

  /** GroupMembership (short names) of a local group; null when the group doesn't exist. */
  async groupMembers(group: string): Promise<string[] | null> {
    const r = await this.exec(MAC_BIN.dscl, ['-plist', '.', '-read', `/Groups/${group}`, 'GroupMembership']);
    if (r.code !== 0) {
      if (NOT_FOUND.test(r.stdout + r.stderr)) return null;
      throw failure(`reading group ${group}`, r);
    }
    // ⚠️ A group without members has no GroupMembership key: "No such key", no plist.
    return r.stdout.includes('<plist') ? (parseDsclPlist(r.stdout).get('GroupMembership') ?? []) : [];
  }

  /** Local groups whose GroupMembership lists `name` (`dscl . -list /Groups GroupMembership` ⚠️). */
  async groupsListing(name: string): Promise<string[]> {
    const r = await this.mustRun(MAC_BIN.dscl, ['.', '-list', '/Groups', 'GroupMembership'], 'listing group members');
    return r.stdout.split('\n').flatMap((l) => {
      const [group, ...members] = l.trim().split(/\s+/);
      return group && members.includes(name) ? [group] : [];
    });
  }

  /**
   * `dseditgroup -o checkmember`: exit 0 and "yes …" = member, non-zero and "no …" = not
   * (⚠️ output and exit status from third-party scripts). Anything else is an error, never "no".
   * Why checkmember: it asks the membership API (nested groups, primary group), i.e. what
   * actually grants rights.
   */
  async isMember(name: string, group: string): Promise<boolean> {
    const r = await this.exec(MAC_BIN.dseditgroup, ['-o', 'checkmember', '-m', name, group]);
    const out = r.stdout.trim();
    if (r.code === 0 && /^yes\b/.test(out)) return true;
    if (r.code !== 0 && /^no\b/.test(out)) return false;
    throw failure(`checking ${name} in ${group}`, r);
  }

  /** dseditgroup -o edit -a|-d NAME -t user GROUP on the local node (its default). */
  async editGroup(op: '-a' | '-d', name: string, group: string): Promise<void> {
    await this.mustRun(MAC_BIN.dseditgroup, ['-o', 'edit', '-q', op, name, '-t', 'user', group], `${op === '-a' ? 'adding' : 'removing'} ${name} ${op === '-a' ? 'to' : 'from'} ${group}`);
  }

  /** `dscl . -create /Users/NAME KEY VALUE…`: creates the record if missing, replaces the key's values. */
  async setAttr(name: string, key: string, ...values: string[]): Promise<void> {
    await this.mustRun(MAC_BIN.dscl, ['.', '-create', `/Users/${name}`, key, ...values], `setting ${key} of ${name}`);
  }

  /**
   * Membership changes only where needed, then checked. Why check first: removing a
   * non-member is an error whose exit status is undocumented, and it keeps repeats harmless.
   * Users: out of admin; staff comes with PrimaryGroupID 20.
   */
  async applyGroup(name: string, group: Group): Promise<void> {
    const admin = await this.isMember(name, 'admin');
    if (group === 'Administrators' && !admin) await this.editGroup('-a', name, 'admin');
    if (group === 'Users') {
      if (admin) await this.editGroup('-d', name, 'admin');
      if (!(await this.isMember(name, 'staff'))) await this.editGroup('-a', name, 'staff');
    }
    const now = await this.isMember(name, 'admin');
    // Why re-check admin after removal: membership through a nested group survives -d.
    if (now !== (group === 'Administrators') || (!now && !(await this.isMember(name, 'staff')))) {
      throw new AccountError('COMMAND_FAILED', `${name}: group membership is not ${group} after dseditgroup`);
    }
  }

  /**
   * ;DisabledUser; on the record, read back: pwpolicy -disableuser [M3], and if that leaves the
   * record as it was, the value itself (the counterpart of the dscl fallback in enabling).
   */
  async markDisabled(name: string): Promise<void> {
    if (isDisabled(await this.mustReadUser(name))) return;
    // Why not stop at a pwpolicy failure: the record is the truth, and the fallback may work
    // where pwpolicy does not (⚠️ e.g. on a record whose creation stopped before its uid).
    const pw = await this.exec(MAC_BIN.pwpolicy, ['-u', name, '-n', LOCAL_NODE, '-disableuser']);
    if (isDisabled(await this.mustReadUser(name))) return;
    const ds = await this.exec(MAC_BIN.dscl, ['.', '-append', `/Users/${name}`, 'AuthenticationAuthority', DISABLED_USER]);
    if (!isDisabled(await this.mustReadUser(name))) throw failure(`disabling ${name}: pwpolicy exit ${pw.code}: ${oneLine(pw.stderr || pw.stdout)}; dscl`, ds);
  }

  /**
   * After anything that may rewrite AuthenticationAuthority: ;DisabledTags;SecureToken is back
   * if it went, and no Secure Token was granted (one would block changing the password and
   * deleting the last holder; we cannot take it back without its password).
   */
  async keepTokenless(name: string): Promise<UserRecord> {
    let rec = await this.mustReadUser(name);
    if (rec.authAuthority.includes(SECURE_TOKEN)) throw new AccountError('COMMAND_FAILED', `${name} was given a Secure Token`);
    if (!rec.authAuthority.includes(NO_SECURE_TOKEN)) {
      await this.mustRun(MAC_BIN.dscl, ['.', '-append', `/Users/${name}`, 'AuthenticationAuthority', NO_SECURE_TOKEN], `keeping ${name} without a Secure Token`);
      rec = await this.mustReadUser(name);
      if (!rec.authAuthority.includes(NO_SECURE_TOKEN)) throw new AccountError('COMMAND_FAILED', `${name}: ${NO_SECURE_TOKEN} did not stick`);
    }
    return rec;
  }

  /**
   * The OS-level backstop if the agent dies: an authentication account policy "current time <
   * the exact expiry instant" (pwpolicy(8) -setaccountpolicies, which takes a file and REPLACES
   * the account's policies), read back with -getaccountpolicies.
   * Why not -setpolicy hardExpireDateGMT: deprecated (pwpolicy(8)), and a date: up to a day late.
   */
  async setBackstop(name: string, expiresAt: Date): Promise<void> {
    const epoch = expiryEpochSeconds(expiresAt);
    // Why a folder of our own: mkdtemp makes it 0700 with a random name, so nobody can put a
    // file or symlink where pwpolicy reads. The policy is no secret; its integrity matters.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'jit-pwpolicy-'));
    try {
      const file = path.join(dir, 'policy.plist');
      await writeFile(file, expiryPolicyPlist(expiresAt), { mode: 0o600, flag: 'wx' });
      await this.mustRun(MAC_BIN.pwpolicy, ['-u', name, '-n', LOCAL_NODE, '-setaccountpolicies', file], `setting ${name}'s expiry`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const r = await this.mustRun(MAC_BIN.pwpolicy, ['-u', name, '-n', LOCAL_NODE, '-getaccountpolicies'], `reading ${name}'s expiry`);
    const got = policyExpiry(r.stdout);
    if (got !== epoch) throw new AccountError('COMMAND_FAILED', `${name}: expiry policy not set to ${epoch} (pwpolicy has ${got ?? 'none of ours'})`);
  }

  /** pgrep by real and by effective uid. BSD pgrep: 0 found, 1 none. */
  async pids(uid: string): Promise<Set<string>> {
    const pids = new Set<string>();
    for (const flag of ['-U', '-u']) {
      const r = await this.mustRun(MAC_BIN.pgrep, [flag, uid], `listing uid ${uid}'s processes`, [0, 1]);
      for (const pid of r.stdout.split('\n').map((l) => l.trim()).filter(Boolean)) pids.add(pid);
    }
    return pids;
  }

  /**
   * Why: group records list members by short name, and a name left in `admin` would make the
   * next account of that name an administrator. dscl works on the name even without a record.
   */
  async dropMemberships(name: string): Promise<void> {
    for (const group of await this.groupsListing(name)) {
      await this.mustRun(MAC_BIN.dscl, ['.', '-delete', `/Groups/${group}`, 'GroupMembership', name], `removing ${name} from ${group}`);
    }
    const left = await this.groupsListing(name);
    if (left.length) throw new AccountError('COMMAND_FAILED', `${name} is still listed in ${left.join(', ')}`);
  }

  /** Runs a command; a non-zero exit is returned, not thrown. Only a failure to start throws. */
  async exec(file: string, argv: string[], opts: { stdin?: string } = {}): Promise<RunResult> {
    try {
      return await this.run(file, argv, opts.stdin === undefined ? {} : { stdin: opts.stdin });
    } catch (e) {
      if (e instanceof ExecError) return e.result;
      throw new AccountError('COMMAND_FAILED', `${file} did not run: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Like exec, but an exit code outside `ok` is an AccountError. */
  async mustRun(file: string, argv: string[], what: string, ok: number[] = [0]): Promise<RunResult> {
    const r = await this.exec(file, argv);
    if (!ok.includes(r.code)) throw failure(what, r);
    return r;
  }
}

/** The uid as a decimal string, refused below MIN_UID: logoff, delete and purge act by uid. */
export function actionableUid(name: string, uid: string): string {
  if (!/^\d+$/.test(uid) || Number(uid) < MIN_UID) {
    throw new AccountError('COMMAND_FAILED', `${name} has uid ${uid || 'none'}, below ${MIN_UID}: refusing to act on it by uid`);
  }
  return uid;
}

export function failure(what: string, r: RunResult): AccountError {
  const text = `${r.stdout}\n${r.stderr}`;
  const code: AccountErrorCode = DENIED.test(text) ? 'ACCESS_DENIED' : 'COMMAND_FAILED';
  return new AccountError(code, `${what}: exit ${r.code}: ${oneLine(r.stderr || r.stdout)}`);
}

export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, 300);
}

/** BSD stat (lstat: a symlink is itself): owner uid and type, or null when nothing is there. */
export async function statOf(dir: MacDirectory, p: string): Promise<{ uid: string; type: string } | null> {
  const r = await dir.exec(MAC_BIN.stat, ['-f', '%u:%HT', p]);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return null;
    throw failure(`looking at ${p}`, r);
  }
  const m = /^(\d+):(.+)$/.exec(r.stdout.trim());
  if (!m) throw new AccountError('COMMAND_FAILED', `stat gave ${r.stdout.trim()} for ${p}`);
  return { uid: m[1]!, type: m[2]! };
}
