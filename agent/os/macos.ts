/**
 * macOS local accounts through dscl, dseditgroup, pwpolicy, createhomedir, sysadminctl,
 * launchctl and pkill.
 *
 * ⚠️ Written from documentation, Apple's published DSTools sources (10.5-era dscl.m) and
 * third-party tools (Chef's mac_user, Salt's mac_shadow, mkuser, jamf/Nix installer scripts):
 * no Mac was available. Every behaviour marked ⚠️ is proven only against the recorded model
 * (test/support/fakeMac.ts) and must be checked on real machines (list in macos.test.ts).
 *
 * Commands are spawned by absolute path, argv only (never a shell); the password travels
 * only on dscl's stdin. Creation: macos-create.ts; purge: macos-purge.ts; the backstop timer:
 * macos-backstop.ts; the commands themselves: macos-dir.ts.
 */
import type { Group } from '../../protocol/groups.ts';
import {
  ACCOUNT_NAME,
  AccountError,
  assertValidName,
  isOwnershipTag,
  MARKER_GROUP,
  notManaged,
  requireManaged,
  TEMP_UID_RANGE,
  type AccountBackend,
  type AccountInfo,
  type AccountRef,
  type CreateAccountSpec,
  type LogoffResult,
} from './backend.ts';
import { run as defaultRun, type Runner } from './exec.ts';
import { armMacBackstop, disarmMacBackstop, listMacBackstops } from './macos-backstop.ts';
import { createMacAccount, macGroup } from './macos-create.ts';
import {
  actionableUid,
  DISABLED_USER,
  GROUP_ATTR,
  isDisabled,
  isEnabled,
  LOCAL_NODE,
  MAC_BIN,
  MacDirectory,
  oneLine,
  type UserRecord,
} from './macos-dir.ts';
import { assertMacPassword, writePassword } from './macos-password.ts';
import { expiryEpochSeconds } from './macos-plist.ts';
import { purgeMac } from './macos-purge.ts';

// Re-exported for the tests. macOS: a local group; the tag is RealName.
export { MARKER_GROUP };
import { MacElevation } from './macos-elevation.ts';
export { MAC_BIN } from './macos-dir.ts';
export { dsclPasswdScript, MAC_PASSWORD } from './macos-password.ts';

export interface MacBackendOptions {
  /** Command runner, injectable so tests can record argv and stdin. */
  run?: Runner;
}

/**
 * macOS account primitives. Ownership marker: membership of the local group `jit-managed`
 * AND RealName `jit-access grant=<id>`; every mutating method except `createDisabled` and
 * `purge` refuses an account without both.
 */
export class MacBackend implements AccountBackend {
  readonly os = 'macos';
  /**
   * TEMP_UID_RANGE, as on Linux. Nothing on macOS argues against it: local accounts get 501 and
   * up, system ones below 500, nobody -2; UniqueID is a 32-bit value and the range stays below
   * 2^31; loginwindow lists any uid ≥ 501. The one allocator that reaches this high is the Active
   * Directory plug-in, which derives uids from GUIDs: ID_TAKEN is checked against the local node
   * only, so a collision with a network account is not detected (very unlikely; a mobile account
   * is local and is seen).
   */
  readonly uidRange = { min: TEMP_UID_RANGE.min, max: TEMP_UID_RANGE.max };
  /** A launchd daemon's plist in /Library/LaunchDaemons is loaded again at boot. */
  readonly backstopSurvivesReboot = true;
  private readonly dir: MacDirectory;
  readonly elevation: MacElevation;

  constructor(opts: MacBackendOptions = {}) {
    this.dir = new MacDirectory(opts.run ?? defaultRun);
    this.elevation = new MacElevation(this.dir);
  }

  async lookup(name: string): Promise<AccountInfo | null> {
    assertValidName(name);
    const rec = await this.dir.readUser(name);
    return rec ? this.info(name, rec) : null;
  }

  /** See macos-create.ts for the order of the commands and why. Then everything is read back. */
  async createDisabled(spec: CreateAccountSpec, password: string): Promise<AccountInfo> {
    await createMacAccount(this.dir, spec, password, this.uidRange, (name) => this.abandon(name));
    const info = await this.info(spec.name, await this.dir.mustReadUser(spec.name));
    if (!info.managed || info.enabled || info.groups.join() !== spec.group) {
      await this.abandon(spec.name).catch(() => {});
      throw new AccountError('COMMAND_FAILED', `${spec.name} not created disabled, managed and in ${spec.group}`);
    }
    return info;
  }

  /** Administrators: add to admin. Users: remove from admin, make sure of staff. Remembered for enable. */
  async setGroups(name: string, group: Group): Promise<void> {
    await requireManaged(this, name);
    macGroup(group);
    await this.dir.setAttr(name, GROUP_ATTR, group);
    await this.dir.applyGroup(name, group);
  }

  /**
   * The backstop first (never enabled without it), the granted group back if disable took it,
   * then pwpolicy -enableuser, all read back.
   */
  async enable(name: string, expiresAt: Date): Promise<void> {
    const info = await requireManaged(this, name);
    await this.dir.setBackstop(name, expiresAt);
    let rec = await this.dir.mustReadUser(name);
    if (rec.group === 'Administrators' && !info.groups.includes('Administrators')) await this.dir.applyGroup(name, 'Administrators');
    // Why only when disabled: the exit status of a no-op -enableuser is undocumented.
    let pw = '';
    if (isDisabled(rec)) {
      const r = await this.dir.exec(MAC_BIN.pwpolicy, ['-u', name, '-n', LOCAL_NODE, '-enableuser']);
      pw = r.code === 0 ? '' : ` (pwpolicy exit ${r.code}: ${oneLine(r.stderr || r.stdout)})`;
      rec = await this.dir.mustReadUser(name);
    }
    if (isDisabled(rec)) {
      // ⚠️ The man page says -enableuser re-enables an account "disabled by a password policy
      // event"; whether that covers -disableuser is undocumented. Fallback: drop the
      // DisabledUser value itself (what Chef's provider does), a documented dscl operation.
      await this.dir.mustRun(MAC_BIN.dscl, ['.', '-delete', `/Users/${name}`, 'AuthenticationAuthority', DISABLED_USER], `enabling ${name}${pw}`);
    }
    rec = await this.dir.keepTokenless(name);
    if (!isEnabled(rec)) {
      throw new AccountError('COMMAND_FAILED', `${name}: ${isDisabled(rec) ? `neither pwpolicy nor dscl enabled the account${pw}` : 'it has no password to log in with'}`);
    }
  }

  /**
   * Dead: ;DisabledUser; (no new logon of any kind) and out of admin (no privilege), both read
   * back. Missing account = success.
   */
  async disable(name: string): Promise<void> {
    const info = await this.lookup(name);
    if (!info) return;
    if (!info.managed) throw notManaged(name);
    await this.deaden(info);
  }

  /**
   * A launchd daemon that makes the account dead at `at` if the agent does not (see
   * macos-backstop.ts): it checks the record still has this uid and both markers before acting.
   */
  async armBackstop(name: string, at: Date): Promise<'timer' | 'expiry-only'> {
    assertValidName(name);
    expiryEpochSeconds(at);
    const info = await requireManaged(this, name);
    return armMacBackstop(this.dir, name, actionableUid(name, info.id), at);
  }

  /** Unloads the job and deletes its plist, read back. Missing = success; the account is not looked at. */
  disarmBackstop(name: string): Promise<void> {
    return disarmMacBackstop(this.dir, name);
  }

  async setPassword(name: string, password: string): Promise<void> {
    const info = await requireManaged(this, name);
    assertMacPassword(password);
    await writePassword(this.dir, name, password);
    // In case setting the password rewrote AuthenticationAuthority ⚠️.
    const rec = await this.dir.keepTokenless(name);
    if (!info.enabled && !isDisabled(rec)) await this.dir.markDisabled(name);
  }

  /**
   * Counts the account's processes, boots out its launchd GUI and user domains, then SIGKILLs
   * every process whose real or effective uid is the account's. A record that never got a uid
   * (creation interrupted) runs nothing.
   */
  async logoff(name: string): Promise<LogoffResult> {
    const info = await requireManaged(this, name);
    if (info.id === '') return { ended: 0 };
    const uid = actionableUid(name, info.id);
    const pids = await this.dir.pids(uid);
    // Why ignore failures: bootout fails when the domain doesn't exist (nobody logged in) ⚠️;
    // the pkill below ends the processes either way. gui/ is the login session, user/ the
    // background domain (ssh, su, cron) [M5].
    for (const domain of [`gui/${uid}`, `user/${uid}`]) await this.dir.exec(MAC_BIN.launchctl, ['bootout', domain]);
    // Why -U and -u, numeric: real and effective uid differ for setuid programs; a number can't
    // be mistaken for another name. BSD pkill: 0 killed, 1 none matched.
    for (const flag of ['-U', '-u']) await this.dir.mustRun(MAC_BIN.pkill, ['-KILL', flag, uid], `killing ${name}'s processes`, [0, 1]);
    return { ended: pids.size };
  }

  /**
   * Disabled first (so the message below is true whoever calls), refused while it runs
   * processes, then `sysadminctl -deleteUser` and, when the record is still there, `dscl .
   * -delete` — sysadminctl has been seen to fail from a root daemon with -14120, keeping the
   * account (microsoft/shell-intune-samples#33, DeterminateSystems nix-installer) — then every
   * group entry of the name. A home left behind is purge's business. Missing account = success.
   */
  async delete(name: string): Promise<void> {
    const info = await this.lookup(name);
    if (!info) return;
    if (!info.managed) throw notManaged(name);
    if (info.id !== '') actionableUid(name, info.id);
    await this.deaden(info);
    // Why refuse (like userdel's exit 8): processes left running keep a uid with whatever they
    // hold open. logoff() first.
    if (info.id !== '' && (await this.dir.pids(info.id)).size > 0) throw new AccountError('LOGGED_IN', `${name} still runs processes; log it off first`);
    // Why read back, not the exit status: sysadminctl exits 0 on failure (⚠️ Chef's provider).
    const sys = await this.dir.exec(MAC_BIN.sysadminctl, ['-deleteUser', name]);
    if (await this.dir.readUser(name)) {
      const ds = await this.dir.exec(MAC_BIN.dscl, ['.', '-delete', `/Users/${name}`]);
      if (await this.dir.readUser(name)) {
        throw new AccountError('COMMAND_FAILED', `${name} disabled, not deletable: sysadminctl ${oneLine(sys.stderr || sys.stdout)}; dscl exit ${ds.code}: ${oneLine(ds.stderr || ds.stdout)}`);
      }
    }
    await this.dir.dropMemberships(name);
  }

  /** See macos-purge.ts for what is and is not cleaned. */
  purge(account: AccountRef): Promise<void> {
    return purgeMac(this.dir, account);
  }

  async listManaged(): Promise<AccountInfo[]> {
    const members = (await this.dir.groupMembers(MARKER_GROUP)) ?? [];
    const infos: AccountInfo[] = [];
    // Why filter: the group is writable by any admin; a member name we wouldn't create is not ours.
    for (const name of members.filter((n) => ACCOUNT_NAME.test(n))) {
      const info = await this.lookup(name);
      if (info?.managed) infos.push(info);
    }
    return infos;
  }

  /**
   * Uninstall: `dscl . -delete /Groups/jit-managed` once no account is in it. Names without a
   * record (a creation that died before the record existed) are dropped first; any other
   * member, ours or not, keeps the group and is named in the error. Every backstop timer of ours
   * left in /Library/LaunchDaemons goes too (also when the group is already gone).
   */
  async dropMarker(): Promise<void> {
    const members = await this.dir.groupMembers(MARKER_GROUP);
    const live: string[] = [];
    for (const m of members ?? []) {
      if (!ACCOUNT_NAME.test(m) || (await this.dir.readUser(m))) live.push(m);
    }
    if (live.length) throw new AccountError('COMMAND_FAILED', `${MARKER_GROUP} still has members: ${live.join(', ')}`);
    // Every backstop timer of ours: its plist, and the job of any name we are dropping.
    for (const name of new Set([...(await listMacBackstops(this.dir)), ...(members ?? [])])) await disarmMacBackstop(this.dir, name);
    if (members === null) return;
    for (const m of members) {
      await this.dir.mustRun(MAC_BIN.dscl, ['.', '-delete', `/Groups/${MARKER_GROUP}`, 'GroupMembership', m], `removing ${m} from ${MARKER_GROUP}`);
    }
    await this.dir.mustRun(MAC_BIN.dscl, ['.', '-delete', `/Groups/${MARKER_GROUP}`], `deleting group ${MARKER_GROUP}`);
    if ((await this.dir.groupMembers(MARKER_GROUP)) !== null) throw new AccountError('COMMAND_FAILED', `group ${MARKER_GROUP} is still there`);
  }

  // ---------------------------------------------------------------- internals

  private async info(name: string, rec: UserRecord): Promise<AccountInfo> {
    // The marker is read from the group record itself: a missing marker group is simply
    // "not ours", not an error.
    // Why not for a record without uid (a creation that stopped early): what checkmember says of
    // one is undocumented ⚠️, and it holds no rights anyway; delete drops its group entries by name.
    const admin = rec.uid !== '' && (await this.dir.isMember(name, 'admin'));
    const staff = rec.uid !== '' && !admin && (await this.dir.isMember(name, 'staff'));
    const markers = (await this.dir.groupMembers(MARKER_GROUP)) ?? [];
    return {
      name,
      id: rec.uid,
      enabled: isEnabled(rec),
      managed: isOwnershipTag(rec.realName) && markers.includes(name),
      groups: admin ? ['Administrators'] : staff ? ['Users'] : [],
    };
  }

  /** ;DisabledUser; and out of admin, both read back. */
  private async deaden(info: AccountInfo): Promise<void> {
    await this.dir.markDisabled(info.name);
    if (!info.groups.includes('Administrators')) return;
    await this.dir.editGroup('-d', info.name, 'admin');
    // Why re-check: membership through a nested group survives -d.
    if (await this.dir.isMember(info.name, 'admin')) throw new AccountError('COMMAND_FAILED', `${info.name} is still in admin after dseditgroup -d`);
  }

  /** Removes what a failed creation made: the account if it exists (it is ours), else our marker entry. */
  private async abandon(name: string): Promise<void> {
    const info = await this.lookup(name);
    if (!info) return this.dir.dropMemberships(name);
    await this.delete(name);
    if (info.id !== '') await this.purge({ name, id: info.id });
  }
}
