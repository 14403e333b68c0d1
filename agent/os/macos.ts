/**
 * macOS local accounts through sysadminctl, dscl, dseditgroup, pwpolicy, launchctl and pkill.
 *
 * ⚠️ Written from documentation, Apple's published DSTools sources (10.5-era dscl.m) and
 * third-party tools (Chef's mac_user, Salt's mac_shadow, jamf/Nix installer scripts): no
 * Mac was available. Every behaviour marked ⚠️ is proven only against the recorded model in
 * macos.test.ts and must be checked on real machines (see that file's header for the list).
 *
 * Commands are spawned by absolute path, argv only (never a shell); the password travels
 * only on dscl's stdin.
 */
import type { Group } from '../../protocol/groups.ts';
import {
  ACCOUNT_NAME,
  AccountError,
  assertValidName,
  GRANT_ID,
  isOwnershipTag,
  MARKER_GROUP,
  notManaged,
  ownershipTag,
  requireManaged,
  type AccountBackend,
  type AccountErrorCode,
  type AccountInfo,
  type CreateAccountSpec,
  type LogoffResult,
} from './backend.ts';
import { ExecError, run as defaultRun, type RunResult, type Runner } from './exec.ts';

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
  test: '/bin/test',
} as const;

// Re-exported for the tests. macOS: a local group; the tag is RealName.
export { MARKER_GROUP };
/** The local directory node. pwpolicy defaults to the search node, which may reach a network directory. */
const LOCAL_NODE = '/Local/Default';
/** Value pwpolicy -disableuser adds to AuthenticationAuthority (⚠️ third-party knowledge: Chef, JumpCloud). */
const DISABLED_USER = ';DisabledUser;';
/** Lowest uid sysadminctl hands out to a regular account; logoff never kills below it. */
const MIN_UID = 501;
const DAY_MS = 86_400_000;

/**
 * Which macOS group stands for each wizard group. `staff` is every local user's primary
 * group (PrimaryGroupID 20), so "Users" means "staff and not admin".
 */
const MAC_GROUPS: Record<Group, 'admin' | 'staff' | null> = {
  Administrators: 'admin',
  'Power Users': null, // macOS has no such group; the server rejects it at request time
  Users: 'staff',
};

/**
 * Passwords we can hand to dscl's command mode: printable ASCII without space, `"`, `'` and
 * `\`, at most 128 characters.
 *
 * Why: dscl's command mode splits each stdin line into words itself, and that quoting is
 * undocumented. Apple's published (10.5-era) source splits on spaces and tabs, ends a quoted
 * word at EITHER quote character, drops a backslash before any character except at a word's
 * first position, and reads lines into a fixed 4096-byte buffer. With none of those characters
 * and a short line, every plausible splitter sees exactly `passwd`, the path and the password.
 * Newline, CR and NUL are excluded as well: a newline would start a second command. The
 * agent's generator (agent/credentials.ts) already stays inside this alphabet.
 */
export const MAC_PASSWORD = /^[!#-&(-[\]-~]{1,128}$/;

/** dscl's "record not found" (eDSRecordNotFound, -14136). ⚠️ text from DSTools sources/scripts. */
const NOT_FOUND = /eDSRecordNotFound|-14136/;
/** Permission failures as the tools phrase them. ⚠️ from sources and third-party reports. */
const DENIED = /eDSPermissionError|-14120|[Pp]ermission denied|must be run as root|should be run as root|[Nn]ot authorized|errAuthorization/;
/** What dscl's command mode prints when a command fails (it still exits 0, see writePassword). */
const DSCL_FAILED = /error|too few parameters|usage:|invalid/i;

export interface MacBackendOptions {
  /** Command runner, injectable so tests can record argv and stdin. */
  run?: Runner;
}

/** One user record as dscl reports it. */
interface UserRecord {
  uid: string;
  realName: string;
  authAuthority: string[];
}

/**
 * macOS account primitives. Ownership marker: membership of the local group `jit-managed`
 * AND RealName `jit-access grant=<id>`; every mutating method except `createDisabled`
 * refuses an account without both.
 *
 * Why RealName for the tag: sysadminctl writes it (-fullName) in the same call that creates
 * the record, so right after creation the tag proves the record we see is the one we made,
 * not an account someone else created under the same name in the meantime.
 */
export class MacBackend implements AccountBackend {
  readonly os = 'macos';
  private readonly run: Runner;

  constructor(opts: MacBackendOptions = {}) {
    this.run = opts.run ?? defaultRun;
  }

  async lookup(name: string): Promise<AccountInfo | null> {
    assertValidName(name);
    const rec = await this.readUser(name);
    return rec ? this.info(name, rec) : null;
  }

  /**
   * sysadminctl -addUser (no password), disabled at once with pwpolicy, then the marker group,
   * the wizard group, the password (dscl command mode on stdin) and the expiry backstop.
   * Any failure after the account exists deletes it again.
   */
  async createDisabled(spec: CreateAccountSpec, password: string): Promise<AccountInfo> {
    const { name, group, grantId } = spec;
    assertValidName(name);
    assertMacPassword(password);
    if (!GRANT_ID.test(grantId)) throw new AccountError('COMMAND_FAILED', 'grant id unfit for the RealName tag');
    macGroup(group);
    backstopDate(spec.expiresAt);
    if (await this.readUser(name)) throw new AccountError('ALREADY_EXISTS', `${name} already exists`);
    // Why first: the marker must be applicable the moment the account exists (see below).
    await this.ensureMarkerGroup();

    const tag = ownershipTag(grantId);
    // ⚠️ No -password: "-password -" prompts, and whether that prompt reads a non-TTY stdin is
    // undocumented. Without it the account briefly exists with no usable password set by us
    // (⚠️ possibly an empty one) until -disableuser below, a few milliseconds later.
    // No -admin: admin rights are granted only once the account is disabled.
    const added = await this.exec(MAC_BIN.sysadminctl, ['-addUser', name, '-fullName', tag, '-home', `/Users/${name}`]);
    // Why re-read: sysadminctl exits 0 on failure (⚠️ per Chef's provider and user reports).
    const rec = await this.readUser(name);
    if (!rec) throw failure('sysadminctl -addUser created nothing', added);
    if (rec.realName !== tag) {
      // Someone else's record took the name between our check and sysadminctl: not ours, leave it.
      throw new AccountError('ALREADY_EXISTS', `${name} appeared with another owner while being created`);
    }
    try {
      await this.disable(name); // at once: pwpolicy -disableuser [M3]
      await this.editGroup('-a', name, MARKER_GROUP);
      // Crash window ⚠️: an agent dying between sysadminctl and here leaves an account with the
      // tag but not the group, which every method then refuses (NOT_MANAGED): delete by hand.
      await this.applyGroup(name, group);
      await this.writePassword(name, password);
      await this.disable(name); // in case setting the password touched AuthenticationAuthority ⚠️
      await this.setBackstop(name, spec.expiresAt);
      const info = await this.info(name, await this.mustReadUser(name));
      if (!info.managed || info.enabled || info.groups.join() !== group) {
        throw new AccountError('COMMAND_FAILED', `${name} not created disabled, managed and in ${group}`);
      }
      return info;
    } catch (e) {
      // Why safe to delete without the full marker: the RealName tag proved the record is ours.
      await this.removeAccount(name, rec.uid).catch(() => {});
      throw e;
    }
  }

  /** Administrators: add to admin. Users: remove from admin, make sure of staff. */
  async setGroups(name: string, group: Group): Promise<void> {
    await requireManaged(this, name);
    macGroup(group);
    await this.applyGroup(name, group);
  }

  /**
   * Enable: set the hard-expiry backstop to `expiresAt`, then pwpolicy -enableuser.
   * Disable: pwpolicy -disableuser. Both are checked against AuthenticationAuthority.
   */
  async setEnabled(name: string, enabled: boolean, expiresAt?: Date): Promise<void> {
    await requireManaged(this, name);
    if (!enabled) return this.disable(name);
    if (!expiresAt) throw new AccountError('COMMAND_FAILED', 'enabling needs expiresAt (the OS-level backstop)');
    await this.setBackstop(name, expiresAt);
    // Why only when disabled: the exit status of a no-op -enableuser is undocumented.
    if (await this.isEnabled(name)) return;
    await this.mustRun(MAC_BIN.pwpolicy, ['-u', name, '-n', LOCAL_NODE, '-enableuser'], `enabling ${name}`);
    if (!(await this.isEnabled(name))) {
      // ⚠️ The man page says -enableuser re-enables an account "disabled by a password policy
      // event"; whether that covers -disableuser is undocumented. Fallback: drop the
      // DisabledUser value itself (what Chef's provider does), a documented dscl operation.
      await this.mustRun(MAC_BIN.dscl, ['.', '-delete', `/Users/${name}`, 'AuthenticationAuthority', DISABLED_USER], `enabling ${name}`);
      if (!(await this.isEnabled(name))) throw new AccountError('COMMAND_FAILED', `${name}: pwpolicy did not enable the account`);
    }
  }

  async setPassword(name: string, password: string): Promise<void> {
    const info = await requireManaged(this, name);
    assertMacPassword(password);
    await this.writePassword(name, password);
    if (!info.enabled) await this.disable(name);
  }

  /**
   * Counts the account's processes, boots out its launchd GUI and user domains, then SIGKILLs
   * every process whose real or effective uid is the account's.
   */
  async logoff(name: string): Promise<LogoffResult> {
    const uid = killableUid(await requireManaged(this, name));
    const pids = await this.pids(uid);
    // Why ignore failures: bootout fails when the domain doesn't exist (nobody logged in) ⚠️;
    // the pkill below ends the processes either way. gui/ is the login session, user/ the
    // background domain (ssh, su, cron) [M5].
    for (const domain of [`gui/${uid}`, `user/${uid}`]) await this.exec(MAC_BIN.launchctl, ['bootout', domain]);
    // Why -U and -u, numeric: real and effective uid differ for setuid programs; a number can't
    // be mistaken for another name. BSD pkill: 0 killed, 1 none matched.
    for (const flag of ['-U', '-u']) await this.mustRun(MAC_BIN.pkill, ['-KILL', flag, uid], `killing ${name}'s processes`, [0, 1]);
    return { ended: pids.size };
  }

  /** sysadminctl -deleteUser (home included), checked with dscl. Missing account = success. */
  async delete(name: string): Promise<void> {
    const info = await this.lookup(name);
    if (!info) return;
    if (!info.managed) throw notManaged(name);
    await this.removeAccount(name, info.id);
  }

  async listManaged(): Promise<AccountInfo[]> {
    const members = (await this.groupMembers(MARKER_GROUP)) ?? [];
    const infos: AccountInfo[] = [];
    // Why filter: the group is writable by any admin; a member name we wouldn't create is not ours.
    for (const name of members.filter((n) => ACCOUNT_NAME.test(n))) {
      const info = await this.lookup(name);
      if (info?.managed) infos.push(info);
    }
    return infos;
  }

  // ---------------------------------------------------------------- internals

  private async info(name: string, rec: UserRecord): Promise<AccountInfo> {
    // Why checkmember for admin/staff: it asks the membership API (nested groups, primary
    // group), i.e. what actually grants rights. The marker is read from the group record
    // itself: a missing marker group is simply "not ours", not an error.
    const admin = await this.isMember(name, 'admin');
    const staff = !admin && (await this.isMember(name, 'staff'));
    const markers = (await this.groupMembers(MARKER_GROUP)) ?? [];
    return {
      name,
      id: rec.uid,
      enabled: !rec.authAuthority.some((v) => v.includes(DISABLED_USER)),
      managed: isOwnershipTag(rec.realName) && markers.includes(name),
      groups: admin ? ['Administrators'] : staff ? ['Users'] : [],
    };
  }

  /**
   * `dscl -plist . -read /Users/NAME …`: null only for eDSRecordNotFound.
   * Why not "any non-zero exit = absent": a failed read (permissions, opendirectoryd down)
   * would then make delete() report success for an account that is still there.
   */
  private async readUser(name: string): Promise<UserRecord | null> {
    const r = await this.exec(MAC_BIN.dscl, ['-plist', '.', '-read', `/Users/${name}`, 'UniqueID', 'RealName', 'AuthenticationAuthority']);
    if (r.code !== 0) {
      if (NOT_FOUND.test(r.stdout + r.stderr)) return null;
      throw failure(`reading ${name}`, r);
    }
    const attrs = parseDsclPlist(r.stdout);
    const uid = attrs.get('UniqueID')?.[0];
    if (!uid || !/^\d+$/.test(uid)) throw new AccountError('COMMAND_FAILED', `${name}: no numeric UniqueID in dscl's answer`);
    return { uid, realName: attrs.get('RealName')?.[0] ?? '', authAuthority: attrs.get('AuthenticationAuthority') ?? [] };
  }

  private async mustReadUser(name: string): Promise<UserRecord> {
    const rec = await this.readUser(name);
    if (!rec) throw new AccountError('NOT_FOUND', `${name} disappeared`);
    return rec;
  }

  private async isEnabled(name: string): Promise<boolean> {
    return !(await this.mustReadUser(name)).authAuthority.some((v) => v.includes(DISABLED_USER));
  }

  /** GroupMembership (short names) of a local group; null when the group doesn't exist. */
  private async groupMembers(group: string): Promise<string[] | null> {
    const r = await this.exec(MAC_BIN.dscl, ['-plist', '.', '-read', `/Groups/${group}`, 'GroupMembership']);
    if (r.code !== 0) {
      if (NOT_FOUND.test(r.stdout + r.stderr)) return null;
      throw failure(`reading group ${group}`, r);
    }
    // ⚠️ A group without members has no GroupMembership key: dscl then prints
    // "No such key: GroupMembership" and no plist (Chef's provider) — read as no members.
    return r.stdout.includes('<plist') ? (parseDsclPlist(r.stdout).get('GroupMembership') ?? []) : [];
  }

  /**
   * `dseditgroup -o checkmember`: exit 0 and "yes …" = member, non-zero and "no …" = not
   * (⚠️ output and exit status from third-party scripts). Anything else is an error, never "no".
   */
  private async isMember(name: string, group: string): Promise<boolean> {
    const r = await this.exec(MAC_BIN.dseditgroup, ['-o', 'checkmember', '-m', name, group]);
    const out = r.stdout.trim();
    if (r.code === 0 && /^yes\b/.test(out)) return true;
    if (r.code !== 0 && /^no\b/.test(out)) return false;
    throw failure(`checking ${name} in ${group}`, r);
  }

  private async ensureMarkerGroup(): Promise<void> {
    if ((await this.groupMembers(MARKER_GROUP)) !== null) return;
    await this.mustRun(MAC_BIN.dseditgroup, ['-o', 'create', '-q', MARKER_GROUP], `creating group ${MARKER_GROUP}`);
    if ((await this.groupMembers(MARKER_GROUP)) === null) throw new AccountError('COMMAND_FAILED', `group ${MARKER_GROUP} was not created`);
  }

  /** dseditgroup -o edit -a|-d NAME -t user GROUP on the local node (its default). */
  private async editGroup(op: '-a' | '-d', name: string, group: string): Promise<void> {
    await this.mustRun(MAC_BIN.dseditgroup, ['-o', 'edit', '-q', op, name, '-t', 'user', group], `${op === '-a' ? 'adding' : 'removing'} ${name} ${op === '-a' ? 'to' : 'from'} ${group}`);
  }

  /**
   * Membership changes only where needed, then checked. Why check first: removing a
   * non-member is an error whose exit status is undocumented, and it keeps repeats harmless.
   */
  private async applyGroup(name: string, group: Group): Promise<void> {
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
   * pwpolicy -disableuser, checked: AuthenticationAuthority must carry ;DisabledUser;.
   * Only when enabled: the exit status of a no-op -disableuser is undocumented.
   */
  private async disable(name: string): Promise<void> {
    if (!(await this.isEnabled(name))) return;
    await this.mustRun(MAC_BIN.pwpolicy, ['-u', name, '-n', LOCAL_NODE, '-disableuser'], `disabling ${name}`);
    if (await this.isEnabled(name)) throw new AccountError('COMMAND_FAILED', `${name}: pwpolicy did not disable the account`);
  }

  /**
   * Sets the password through dscl's command mode: `dscl -q .` reads commands from stdin
   * [M2] (-q: no prompt, plain line reading). Checked by passwordLastSetTime moving on.
   *
   * Why not `sysadminctl -resetPasswordFor … -newPassword -`: the prompt's stdin behaviour is
   * undocumented, and any argv form would expose the password to `ps`.
   */
  private async writePassword(name: string, password: string): Promise<void> {
    const before = await this.passwordSetAt(name);
    const r = await this.exec(MAC_BIN.dscl, ['-q', '.'], { stdin: dsclPasswdScript(name, password) });
    // Why read the output: in command mode dscl exits 0 even when a command failed (DSTools
    // source: the interactive loop always returns eDSNoErr); errors only show as text.
    // Why redact: a tool echoing its input line in an error would otherwise put the password
    // into our error message, and so into logs.
    const out = `${r.stdout}\n${r.stderr}`.split(password).join('***');
    if (r.code !== 0 || DSCL_FAILED.test(out)) {
      throw new AccountError(DENIED.test(out) ? 'ACCESS_DENIED' : 'COMMAND_FAILED', `dscl passwd for ${name} failed: ${oneLine(out)}`);
    }
    const after = await this.passwordSetAt(name);
    if (after === undefined || (before !== undefined && after <= before)) {
      throw new AccountError('COMMAND_FAILED', `${name}: dscl reported no error but the password was not changed`);
    }
  }

  /** accountPolicyData's passwordLastSetTime (seconds, fractional). ⚠️ key as read by Salt. */
  private async passwordSetAt(name: string): Promise<number | undefined> {
    const r = await this.exec(MAC_BIN.dscl, ['.', '-readpl', `/Users/${name}`, 'accountPolicyData', 'passwordLastSetTime']);
    const m = r.code === 0 ? /passwordLastSetTime:\s*(\d+(?:\.\d+)?)/.exec(r.stdout) : null;
    return m ? Number(m[1]) : undefined;
  }

  /**
   * OS-level backstop if the agent dies: the legacy per-user policy "usingHardExpirationDate=1
   * hardExpireDateGMT=MM/DD/YY" (man: "user's account is disabled on the date"), read back
   * with -getpolicy. ⚠️ The man page marks -setpolicy DEPRECATED (still used by Salt); whether
   * current macOS enforces these keys, and at which moment of the GMT day, is unverified.
   */
  private async setBackstop(name: string, expiresAt: Date): Promise<void> {
    const date = backstopDate(expiresAt);
    // One argv element, as the synopsis' "policy1=value1 policy2=value2" (no shell to split it).
    await this.mustRun(MAC_BIN.pwpolicy, ['-u', name, '-n', LOCAL_NODE, '-setpolicy', `usingHardExpirationDate=1 hardExpireDateGMT=${date}`], `setting ${name}'s expiry`);
    const r = await this.mustRun(MAC_BIN.pwpolicy, ['-u', name, '-n', LOCAL_NODE, '-getpolicy'], `reading ${name}'s expiry`);
    const policy = parsePolicy(r.stdout);
    if (policy.get('usingHardExpirationDate') !== '1' || !sameDate(policy.get('hardExpireDateGMT'), date)) {
      throw new AccountError('COMMAND_FAILED', `${name}: hard expiry not set to ${date} (pwpolicy says ${policy.get('hardExpireDateGMT') ?? 'nothing'})`);
    }
  }

  /** pgrep by real and by effective uid. BSD pgrep: 0 found, 1 none. */
  private async pids(uid: string): Promise<Set<string>> {
    const pids = new Set<string>();
    for (const flag of ['-U', '-u']) {
      const r = await this.mustRun(MAC_BIN.pgrep, [flag, uid], `listing uid ${uid}'s processes`, [0, 1]);
      for (const pid of r.stdout.split('\n').map((l) => l.trim()).filter(Boolean)) pids.add(pid);
    }
    return pids;
  }

  /**
   * Deletes a record we own: refuse while it runs processes, drop admin first, sysadminctl
   * -deleteUser, then check the record, stale memberships and the home are gone.
   */
  private async removeAccount(name: string, uid: string): Promise<void> {
    // Why refuse (like userdel's exit 8): processes left running keep a uid that the next
    // account may receive, with whatever they hold open. logoff() first.
    if ((await this.pids(killableUid({ name, id: uid }))).size > 0) {
      throw new AccountError('LOGGED_IN', `${name} still runs processes; log it off first`);
    }
    // Why first: rights end now even if the deletion below fails.
    if (await this.isMember(name, 'admin')) await this.editGroup('-d', name, 'admin');
    const r = await this.exec(MAC_BIN.sysadminctl, ['-deleteUser', name]);
    // Why re-read: sysadminctl exits 0 on failure (⚠️).
    if (await this.readUser(name)) throw failure(`sysadminctl -deleteUser left ${name}`, r);
    await this.purgeMemberships(name);
    // ⚠️ "deletes the home unless -keepHome" (sysadminctl -h). A home left behind would belong
    // to whoever gets this uid next: report it (a retry succeeds: the account is gone).
    const home = await this.exec(MAC_BIN.test, ['-e', `/Users/${name}`]);
    if (home.code === 0) throw new AccountError('COMMAND_FAILED', `${name} deleted but /Users/${name} was left`);
  }

  /**
   * Why: group records list members by short name, and a name left in `admin` would make the
   * next account of that name an administrator. dscl works on the name even without a record.
   */
  private async purgeMemberships(name: string): Promise<void> {
    for (const group of ['admin', 'staff', MARKER_GROUP]) {
      if (!(await this.groupMembers(group))?.includes(name)) continue;
      await this.mustRun(MAC_BIN.dscl, ['.', '-delete', `/Groups/${group}`, 'GroupMembership', name], `removing ${name} from ${group}`);
      if ((await this.groupMembers(group))?.includes(name)) throw new AccountError('COMMAND_FAILED', `${name} is still listed in ${group}`);
    }
  }

  /** Runs a command; a non-zero exit is returned, not thrown. Only a failure to start throws. */
  private async exec(file: string, argv: string[], opts: { stdin?: string } = {}): Promise<RunResult> {
    try {
      return await this.run(file, argv, opts.stdin === undefined ? {} : { stdin: opts.stdin });
    } catch (e) {
      if (e instanceof ExecError) return e.result;
      throw new AccountError('COMMAND_FAILED', `${file} did not run: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Like exec, but an exit code outside `ok` is an AccountError. */
  private async mustRun(file: string, argv: string[], what: string, ok: number[] = [0]): Promise<RunResult> {
    const r = await this.exec(file, argv);
    if (!ok.includes(r.code)) throw failure(what, r);
    return r;
  }
}

/** The stdin payload for `dscl -q .`: one passwd command, then quit. Validates both values. */
export function dsclPasswdScript(name: string, password: string): string {
  assertValidName(name);
  assertMacPassword(password);
  return `passwd /Users/${name} ${password}\nquit\n`;
}

/**
 * The hard-expiry date for `expiresAt`: MM/DD/YY of the UTC day AFTER it. Why the day after:
 * the policy has day granularity (GMT); rounding down would cut access short, so this backstop
 * may fire up to a day late, never early (the agent itself ends access on time).
 * ⚠️ Format "mm/dd/yy" per the older pwpolicy man page; Salt's docs say mm/dd/yyyy.
 */
export function backstopDate(expiresAt: Date): string {
  const t = expiresAt.getTime();
  if (!Number.isFinite(t)) throw new AccountError('COMMAND_FAILED', 'invalid expiry date');
  const d = new Date((Math.floor(t / DAY_MS) + 1) * DAY_MS);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getUTCMonth() + 1)}/${two(d.getUTCDate())}/${two(d.getUTCFullYear() % 100)}`;
}

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

function xmlText(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_m, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1))) : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!,
  );
}

/** key=value words from `pwpolicy -getpolicy` (⚠️ a header line, then the policies: Salt's parser). */
function parsePolicy(out: string): Map<string, string> {
  const policy = new Map<string, string>();
  for (const word of out.split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq > 0) policy.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return policy;
}

/** Same calendar day, whether pwpolicy answers with a 2- or a 4-digit year (⚠️ both reported). */
function sameDate(got: string | undefined, want: string): boolean {
  const m = got && /^(\d{1,2})\/(\d{1,2})\/(\d{2}|\d{4})$/.exec(got);
  const [wm, wd, wy] = want.split('/').map(Number) as [number, number, number];
  return !!m && Number(m[1]) === wm && Number(m[2]) === wd && Number(m[3]) % 100 === wy;
}

function macGroup(group: Group): 'admin' | 'staff' {
  const g = MAC_GROUPS[group];
  if (!g) throw new AccountError('UNSUPPORTED_GROUP', `macOS has no ${group} group`);
  return g;
}

function assertMacPassword(password: string): void {
  if (!MAC_PASSWORD.test(password)) {
    throw new AccountError('COMMAND_FAILED', 'password must be 1-128 printable ASCII characters without space, quotes or backslash');
  }
}

/** The uid as a decimal string, refused below MIN_UID: logoff and delete kill/check by uid. */
function killableUid(info: { name: string; id: string }): string {
  if (!/^\d+$/.test(info.id) || Number(info.id) < MIN_UID) {
    throw new AccountError('COMMAND_FAILED', `${info.name} has uid ${info.id}, below ${MIN_UID}: refusing to act on it by uid`);
  }
  return info.id;
}

function failure(what: string, r: RunResult): AccountError {
  const text = `${r.stdout}\n${r.stderr}`;
  const code: AccountErrorCode = DENIED.test(text) ? 'ACCESS_DENIED' : 'COMMAND_FAILED';
  return new AccountError(code, `${what}: exit ${r.code}: ${oneLine(r.stderr || r.stdout)}`);
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, 300);
}
