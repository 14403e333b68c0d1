import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Group } from '../../protocol/groups.ts';
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
  type AccountBackend,
  type AccountErrorCode,
  type AccountInfo,
  type CreateAccountSpec,
  type LogoffResult,
} from './backend.ts';
import { ExecError, run as defaultRun, type RunResult, type Runner } from './exec.ts';

// Re-exported for the tests and bench/. Linux: a supplementary group; the tag is the GECOS field.
export { MARKER_GROUP };
const DAY_MS = 86_400_000;
/** Shadow expiry day 1 (1970-01-02): "expired" for shadow-utils and PAM, our "disabled". */
const EXPIRED = '1';

/** Which Unix group stands for each wizard group, first existing one wins. */
const UNIX_GROUPS: Record<Group, string[]> = {
  Administrators: ['sudo', 'wheel'], // Debian/Ubuntu, RHEL/Fedora/Arch
  'Power Users': [], // Linux has no such thing
  Users: ['users'],
};

type Row = string[];

export interface LinuxBackendOptions {
  /** Sandbox root: work on ROOT/etc instead of /etc (tests). */
  root?: string;
  /** uid range for new accounts (useradd -K UID_MIN/UID_MAX); login.defs when unset outside a sandbox. */
  uidMin?: number;
  uidMax?: number;
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
  private readonly uidMin: number | undefined;
  private readonly uidMax: number | undefined;
  private readonly run: Runner;

  constructor(opts: LinuxBackendOptions = {}) {
    if (opts.root !== undefined && (!path.isAbsolute(opts.root) || path.resolve(opts.root) === '/')) {
      throw new Error(`sandbox root must be an absolute path other than /: ${opts.root}`);
    }
    this.root = opts.root;
    // Why: logoff kills by numeric uid machine-wide, and a sandbox's passwd is invisible to the
    // real system, so a sandbox uid equal to a real user's would kill that user's processes.
    // Sandbox uids therefore come from a range far above anything a real system allocates.
    this.uidMin = opts.uidMin ?? (opts.root ? 2_000_000 : undefined);
    this.uidMax = opts.uidMax ?? (opts.root ? 2_099_999 : undefined);
    this.run = opts.run ?? defaultRun;
  }

  async lookup(name: string): Promise<AccountInfo | null> {
    assertValidName(name);
    const [passwd, shadow, groups] = await Promise.all([this.table('passwd'), this.table('shadow'), this.table('group')]);
    const pw = passwd.find((r) => r[0] === name);
    if (!pw) return null;
    const sp = shadow.find((r) => r[0] === name) ?? [];
    const memberOf = groups.filter((g) => members(g).includes(name)).map((g) => g[0]);
    const wizardGroups = (Object.keys(UNIX_GROUPS) as Group[]).filter((wg) => {
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
    const uidRange = this.uidMin === undefined ? [] : ['-K', `UID_MIN=${this.uidMin}`, '-K', `UID_MAX=${this.uidMax}`];
    await this.cmd(
      'useradd',
      // -e 1: created expired (disabled). -K PASS_MAX_DAYS=-1: no site password-ageing policy
      // can force a password change in the middle of a grant.
      [...this.prefix(), ...uidRange, '-K', 'PASS_MAX_DAYS=-1', '-m', '-s', '/bin/bash', '-e', EXPIRED,
        '-c', ownershipTag(spec.grantId), '-G', `${unixGroup},${MARKER_GROUP}`, '--', spec.name],
      { errors: { 1: 'ACCESS_DENIED', 3: 'INVALID_NAME', 6: 'UNSUPPORTED_GROUP', 9: 'ALREADY_EXISTS' } },
    );
    return finishCreate(this, spec.name, () => this.writePassword(spec.name, password, true));
  }

  async setGroups(name: string, group: Group): Promise<void> {
    await requireManaged(this, name);
    const unixGroup = await this.unixGroup(group);
    await this.cmd('usermod', [...this.prefix(), '-G', `${unixGroup},${MARKER_GROUP}`, '--', name]);
  }

  /**
   * Enable: unlock the password and set the account expiry to the day after `expiresAt`.
   * Disable: lock the password and expire the account (usermod -L alone leaves key-based logins open).
   */
  async setEnabled(name: string, enabled: boolean, expiresAt?: Date): Promise<void> {
    await requireManaged(this, name);
    if (enabled && !expiresAt) throw new AccountError('COMMAND_FAILED', 'enabling needs expiresAt (the OS-level backstop)');
    const day = enabled ? String(expiryDay(expiresAt!)) : EXPIRED;
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
    if (this.root && !(Number(uid) >= this.uidMin! && Number(uid) <= this.uidMax!)) {
      throw new AccountError('COMMAND_FAILED', `sandbox uid ${uid} outside ${this.uidMin}-${this.uidMax}: refusing to kill by uid`);
    }
    if (!this.root) {
      // Why ignore failure: it exits 1 where systemd-logind isn't running (containers) and is
      // missing on non-systemd distributions; the pkill below ends the processes anyway.
      await this.cmd('loginctl', ['terminate-user', uid]).catch(() => {});
    }
    const pids = new Set<string>();
    // Why -U and -u, numeric: real and effective uid differ for setuid programs; a numeric
    // uid can't be mistaken for another name (pkill exits 2 for an unknown name).
    for (const flag of ['-U', '-u']) {
      const found = await this.cmd('pgrep', [flag, uid], { ok: [0, 1] });
      for (const pid of found.stdout.split('\n').filter(Boolean)) pids.add(pid);
    }
    for (const flag of ['-U', '-u']) await this.cmd('pkill', ['-KILL', flag, uid], { ok: [0, 1] });
    return { ended: pids.size };
  }

  /** userdel -r. Missing account = success. Exit 12 (home left) is reported, though the account is gone. */
  async delete(name: string): Promise<void> {
    const info = await this.lookup(name);
    if (!info) return;
    if (!info.managed) throw notManaged(name);
    const r = await this.cmd('userdel', [...this.prefix(), '-r', '--', name], {
      ok: [0, 6, 12], // 6: deleted meanwhile
      errors: { 1: 'ACCESS_DENIED', 8: 'LOGGED_IN' },
    });
    // Why report 12: userdel deliberately keeps a home it doesn't own, and a leftover home
    // would belong to whoever gets this uid next. A retry succeeds (the account is gone).
    if (r.code === 12) throw new AccountError('COMMAND_FAILED', `${name} deleted but its home was left: ${r.stderr.trim()}`);
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
      return await this.run(file, argv, { stdin: opts.stdin, okCodes: opts.ok });
    } catch (e) {
      const code = e instanceof ExecError ? opts.errors?.[e.result.code] : undefined;
      throw new AccountError(code ?? 'COMMAND_FAILED', e instanceof Error ? e.message : String(e));
    }
  }
}

/**
 * Shadow expiry is a whole day number and the account counts as expired from 00:00 UTC
 * of that day. Why the day after: rounding `expiresAt` down would cut access short by up
 * to a day; this backstop may fire up to a day late, never early (the agent ends access on time).
 */
export function expiryDay(expiresAt: Date): number {
  return Math.floor(expiresAt.getTime() / DAY_MS) + 1;
}

function pickGroup(group: Group, groups: Row[]): string | undefined {
  return UNIX_GROUPS[group].find((u) => groups.some((g) => g[0] === u));
}

function members(groupRow: Row): string[] {
  return (groupRow[3] ?? '').split(',').filter(Boolean);
}

/** passwd -S says "P": a hash, not locked ('!'), not '*', not empty. */
function passwordUsable(field: string | undefined): boolean {
  return !!field && !field.startsWith('!') && !field.startsWith('*');
}

function expired(field: string | undefined): boolean {
  return !!field && Math.floor(Date.now() / DAY_MS) >= Number(field);
}

function assertPassword(password: string): void {
  // Why: chpasswd reads one `name:password` per line (a newline would start another record)
  // into a C string (a NUL would silently truncate the password).
  if (!password || /[\n\0]/.test(password)) throw new AccountError('COMMAND_FAILED', 'password empty or with a newline or NUL');
}
