import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { GROUPS, type Group } from '../../protocol/groups.ts';
import {
  AccountError,
  assertValidName,
  finishCreate,
  GRANT_ID,
  isOwnershipTag,
  MARKER_GROUP,
  notManaged,
  ownershipTag,
  requireManaged,
  TEMP_UID_RANGE,
  type AccountBackend,
  type AccountRef,
  type AccountErrorCode,
  type AccountInfo,
  type CreateAccountSpec,
  type LogoffResult,
} from './backend.ts';
import { ExecError, run as defaultRun, type RunResult, type Runner } from './exec.ts';
import { killAll } from './procs.ts';
import { assertPassword, EXPIRED, expiryDay, members, passwordUsable, expired, pickGroup, type Row } from './linux-files.ts';
import { armLinuxBackstop, disarmLinuxBackstop, SAFE_PATH, type BackstopHost } from './linux-backstop.ts';
import { LEFTOVER_DIRS, purgeLeftovers } from './linux-purge.ts';
import { LinuxElevation } from './linux-elevation.ts';

// Re-exported for the tests and bench/. Linux: a supplementary group; the tag is the GECOS field.
export { MARKER_GROUP, expiryDay };


export interface LinuxBackendOptions {
  /** Sandbox root: work on ROOT/etc instead of /etc (tests). */
  root?: string;
  /** uid range for new accounts (TEMP_UID_RANGE outside a sandbox). */
  uidMin?: number;
  uidMax?: number;
  /**
   * Folders searched for files a deleted account still owns (LEFTOVER_DIRS by default). Real
   * folders even in a sandbox: a sandbox account's processes run on this machine, and sandbox
   * uids come from a range no real account uses.
   */
  leftoverDirs?: string[];
  /** Command runner, injectable so tests can watch argv. */
  run?: Runner;
}

/**
 * Local accounts through shadow-utils (useradd/usermod/userdel/groupadd/chpasswd),
 * reading state straight from passwd/shadow/group, which are the files those tools write.
 */
export class LinuxBackend implements AccountBackend {
  readonly os = 'linux';
  private readonly root: string | undefined;
  readonly uidRange: { min: number; max: number };
  /** Transient systemd timers, and the detached process elsewhere, end with a reboot. */
  readonly backstopSurvivesReboot = false;
  private readonly leftoverDirs: string[];
  /** Pid files of backstop processes where systemd is not init. */
  private readonly backstopDir: string;
  private readonly run: Runner;
  readonly elevation: LinuxElevation;

  constructor(opts: LinuxBackendOptions = {}) {
    if (opts.root !== undefined && (!path.isAbsolute(opts.root) || path.resolve(opts.root) === '/')) {
      throw new Error(`sandbox root must be an absolute path other than /: ${opts.root}`);
    }
    this.root = opts.root;
    // Why: logoff kills by numeric uid machine-wide, and a sandbox's passwd is invisible to the
    // real system, so a sandbox uid equal to a real user's would kill that user's processes.
    // Sandbox uids therefore come from a range far above anything a real system allocates.
    const sandboxRange = { min: 2_000_000, max: 2_099_999 };
    const range = opts.root ? sandboxRange : TEMP_UID_RANGE;
    this.uidRange = { min: opts.uidMin ?? range.min, max: opts.uidMax ?? range.max };
    this.leftoverDirs = opts.leftoverDirs ?? LEFTOVER_DIRS;
    this.backstopDir = path.join(opts.root ?? '/', 'run', 'jit-agent', 'backstop');
    this.run = opts.run ?? defaultRun;
    this.elevation = new LinuxElevation({
      root: this.root,
      cmd: (file, argv, ok) => this.cmd(file, argv, { ...(ok ? { ok } : {}) }),
      prefix: () => this.prefix(),
      table: (file) => this.table(file),
      assertKillable: (uid) => this.assertKillable(uid),
    });
  }

  async lookup(name: string): Promise<AccountInfo | null> {
    assertValidName(name);
    const [passwd, shadow, groups] = await Promise.all([this.table('passwd'), this.table('shadow'), this.table('group')]);
    const pw = passwd.find((r) => r[0] === name);
    if (!pw) return null;
    const sp = shadow.find((r) => r[0] === name) ?? [];
    const memberOf = groups.filter((g) => members(g).includes(name)).map((g) => g[0]);
    const wizardGroups = GROUPS.filter((wg) => {
      const unix = pickGroup(wg, groups);
      return unix !== undefined && memberOf.includes(unix);
    });
    return {
      name,
      id: pw[2] ?? '',
      enabled: passwordUsable(sp[1]) && !expired(sp[7]),
      managed: memberOf.includes(MARKER_GROUP) && isOwnershipTag(pw[4] ?? ''),
      groups: wizardGroups,
    };
  }

  async createDisabled(spec: CreateAccountSpec, password: string): Promise<AccountInfo> {
    assertValidName(spec.name);
    assertPassword(password);
    if (!GRANT_ID.test(spec.grantId)) throw new AccountError('COMMAND_FAILED', 'grant id unfit for the GECOS tag');
    const unixGroup = await this.unixGroup(spec.group);
    await this.cmd('groupadd', [...this.prefix(), '-r', '-f', MARKER_GROUP]);
    await this.cmd(
      'useradd',
      // -e 1: created expired (disabled). -K PASS_MAX_DAYS=-1: no site password-ageing policy
      // can force a password change in the middle of a grant.
      [...this.prefix(), ...this.idFlags(spec.uid), '-K', 'PASS_MAX_DAYS=-1', '-m', '-s', '/bin/bash', '-e', EXPIRED,
        '-c', ownershipTag(spec.grantId), '-G', `${unixGroup},${MARKER_GROUP}`, '--', spec.name],
      { errors: { 1: 'ACCESS_DENIED', 3: 'INVALID_NAME', 4: 'ID_TAKEN', 6: 'UNSUPPORTED_GROUP', 9: 'ALREADY_EXISTS' } },
    );
    return finishCreate(this, spec.name, () => this.writePassword(spec.name, password, true));
  }

  async setGroups(name: string, group: Group): Promise<void> {
    await requireManaged(this, name);
    const unixGroup = await this.unixGroup(group);
    await this.cmd('usermod', [...this.prefix(), '-G', `${unixGroup},${MARKER_GROUP}`, '--', name]);
  }

  /**
   * useradd flags for the uid: exactly `uid` (its own group gets the same number as gid, and
   * -l keeps a large uid from growing lastlog/faillog), else one from the range.
   */
  private idFlags(uid: number | undefined): string[] {
    if (uid === undefined) return ['-K', `UID_MIN=${this.uidRange.min}`, '-K', `UID_MAX=${this.uidRange.max}`];
    if (!Number.isSafeInteger(uid) || uid < this.uidRange.min || uid > this.uidRange.max) {
      throw new AccountError('COMMAND_FAILED', `uid ${uid} outside ${this.uidRange.min}-${this.uidRange.max}`);
    }
    return ['-u', String(uid), '-l', '-U', ...['UID_MIN', 'UID_MAX', 'GID_MIN', 'GID_MAX'].flatMap((k) => ['-K', `${k}=${uid}`])];
  }

  /** Unlocks the password and sets the account expiry to the day after `expiresAt`. */
  enable(name: string, expiresAt: Date): Promise<void> {
    return this.applyEnabled(name, true, String(expiryDay(expiresAt)));
  }

  /** Locks the password and expires the account: usermod -L alone leaves key-based logins open. */
  async disable(name: string): Promise<void> {
    if (await this.lookup(name)) await this.applyEnabled(name, false, EXPIRED);
  }

  private async applyEnabled(name: string, enabled: boolean, day: string): Promise<void> {
    await requireManaged(this, name);
    // Why a day number, not YYYY-MM-DD: usermod parses dates in the local time zone
    // (under TZ=Pacific/Kiritimati, 2026-11-22 became day 20778, not 20779).
    await this.cmd('usermod', [...this.prefix(), enabled ? '-U' : '-L', '-e', day, '--', name]);
    // Why check: `usermod -U` on a '!'-only password (no password ever set) warns,
    // exits 0 and leaves it locked.
    const sp = await this.shadowRow(name);
    if (passwordUsable(sp[1]) !== enabled || sp[7] !== day) {
      throw new AccountError('COMMAND_FAILED', `${name}: usermod did not ${enabled ? 'enable' : 'disable'} the account`);
    }
  }

  async setPassword(name: string, password: string): Promise<void> {
    await requireManaged(this, name);
    assertPassword(password);
    const sp = await this.shadowRow(name);
    await this.writePassword(name, password, !passwordUsable(sp[1]));
  }

  /**
   * Ends the account's systemd sessions, then SIGKILLs every process whose real or
   * effective uid is the account's. Counts the processes before killing them.
   */
  async logoff(name: string): Promise<LogoffResult> {
    const uid = (await requireManaged(this, name)).id;
    this.assertKillable(uid);
    if (!this.root) {
      // Why ignore failure: it exits 1 where systemd-logind isn't running (containers) and is
      // missing on non-systemd distributions; the pkill below ends the processes anyway.
      // Linger first: a lingering user's systemd manager would otherwise outlive terminate-user.
      await this.cmd('loginctl', ['disable-linger', uid]).catch(() => {});
      await this.cmd('loginctl', ['terminate-user', uid]).catch(() => {});
    }
    // By numeric uid, real or effective (setuid programs): procs.ts, what pgrep/pkill -U/-u do.
    const { killed, left } = await killAll(uid);
    if (left.length) throw new AccountError('COMMAND_FAILED', `uid ${uid} still runs ${left.slice(0, 5).join(', ')} after SIGKILL`);
    return { ended: killed };
  }

  /**
   * userdel -r. Missing account = success. Exit 12 (userdel keeps a home the account does not
   * own) also counts: the account is gone, and purge deals with what is left.
   */
  async delete(name: string): Promise<void> {
    const info = await this.lookup(name);
    if (!info) return;
    if (!info.managed) throw notManaged(name);
    await this.cmd('userdel', [...this.prefix(), '-r', '--', name], {
      ok: [0, 6, 12], // 6: deleted meanwhile
      errors: { 1: 'ACCESS_DENIED', 8: 'LOGGED_IN', 10: 'COMMAND_FAILED' },
    });
  }

  /** What the deleted account left (linux-purge.ts); nothing is touched while any account has that uid again. */
  async purge(account: AccountRef): Promise<void> {
    assertValidName(account.name);
    const passwd = await this.table('passwd');
    if (passwd.some((r) => r[2] === account.id)) return;
    // A directory service's account (LDAP, SSSD) may have the uid too: then it is not ours either.
    if (!this.root && (await this.cmd('getent', ['passwd', account.id], { ok: [0, 2] })).stdout.trim()) return;
    this.assertKillable(account.id);
    const nameFree = !passwd.some((r) => r[0] === account.name);
    await purgeLeftovers(account, { root: this.root ?? '/', leftoverDirs: this.leftoverDirs, nameFree, run: (f, a, o) => this.cmd(f, a, { ...(o?.okCodes ? { ok: o.okCodes } : {}) }) });
  }

  /** The OS backstop timer (linux-backstop.ts): a systemd timer, else a detached process. */
  async armBackstop(name: string, at: Date): Promise<'timer' | 'expiry-only'> {
    const { id } = await requireManaged(this, name);
    this.assertKillable(id);
    return armLinuxBackstop(this.backstopHost(), name, id, at);
  }

  async disarmBackstop(name: string): Promise<void> {
    assertValidName(name);
    await disarmLinuxBackstop(this.backstopHost(), name);
  }

  private backstopHost(): BackstopHost {
    return { root: this.root, dir: this.backstopDir, cmd: (file, argv, ok) => this.cmd(file, argv, { ...(ok ? { ok } : {}) }) };
  }

  /** Uninstall: groupdel of the marker group once it has no members. */
  async dropMarker(): Promise<void> {
    const group = (await this.table('group')).find((g) => g[0] === MARKER_GROUP);
    if (!group) return;
    if (members(group).length) throw new AccountError('COMMAND_FAILED', `${MARKER_GROUP} still has members: ${members(group).join(', ')}`);
    await this.cmd('groupdel', [...this.prefix(), '--', MARKER_GROUP], { ok: [0, 6] });
  }

  /**
   * Why: logoff and purge act on a numeric uid machine-wide, and a sandbox's passwd is invisible
   * to the real system, so there only uids from the sandbox's own range may be acted on; on a
   * real system, never a system account's.
   */
  private assertKillable(uid: string): void {
    const n = Number(uid);
    const ok = this.root ? n >= this.uidRange.min && n <= this.uidRange.max : Number.isSafeInteger(n) && n >= 1000;
    if (!ok) throw new AccountError('COMMAND_FAILED', `uid ${uid} is not one this agent may act on by number`);
  }

  async listManaged(): Promise<AccountInfo[]> {
    const group = (await this.table('group')).find((g) => g[0] === MARKER_GROUP);
    const infos = await Promise.all(members(group ?? []).map((n) => this.lookup(n)));
    return infos.filter((i): i is AccountInfo => !!i?.managed);
  }

  /**
   * chpasswd with `name:password` on stdin. chpasswd rewrites the whole field, dropping a
   * lock '!', so `relock` locks it again.
   */
  private async writePassword(name: string, password: string, relock: boolean): Promise<void> {
    // Why two forms: plain chpasswd goes through PAM (the distribution's hash and policy),
    // but PAM modules can't load inside the chroot of `-R` (pam_start failure 26). With
    // `-c SHA512` chpasswd hashes by itself and skips PAM. stdin is identical in both.
    const args = this.root ? ['-c', 'SHA512', '-R', this.root] : [];
    await this.cmd('chpasswd', args, { stdin: `${name}:${password}\n` });
    if (relock) await this.cmd('usermod', [...this.prefix(), '-L', '--', name]);
  }

  private async unixGroup(group: Group): Promise<string> {
    const unix = pickGroup(group, await this.table('group'));
    if (!unix) throw new AccountError('UNSUPPORTED_GROUP', `no Linux group for ${group} here`);
    return unix;
  }

  private async shadowRow(name: string): Promise<Row> {
    return (await this.table('shadow')).find((r) => r[0] === name) ?? [];
  }

  private async table(file: 'passwd' | 'shadow' | 'group'): Promise<Row[]> {
    const text = await readFile(path.join(this.root ?? '/', 'etc', file), 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new AccountError(e.code === 'EACCES' ? 'ACCESS_DENIED' : 'COMMAND_FAILED', e.message);
    });
    return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  }

  /** useradd/usermod/userdel/groupadd take --prefix (chpasswd only has the chrooting -R). */
  private prefix(): string[] {
    return this.root ? ['--prefix', this.root] : [];
  }

  /** Runs a command, turning failures into AccountErrors via `errors` (exit code → code). */
  private async cmd(
    file: string,
    argv: string[],
    opts: { stdin?: string; ok?: number[]; errors?: Partial<Record<number, AccountErrorCode>> } = {},
  ): Promise<RunResult> {
    try {
      // Tools only from the system folders (never an inherited PATH), but in a sandbox (tests).
      const env = this.root ? undefined : { ...process.env, PATH: SAFE_PATH };
      return await this.run(file, argv, { stdin: opts.stdin, okCodes: opts.ok, ...(env ? { env } : {}) });
    } catch (e) {
      const code = e instanceof ExecError ? opts.errors?.[e.result.code] : undefined;
      throw new AccountError(code ?? 'COMMAND_FAILED', e instanceof Error ? e.message : String(e));
    }
  }
}
