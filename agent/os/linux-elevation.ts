/**
 * elevate-account and the rogue-admin guard on Linux, through shadow-utils (`usermod -a -G`,
 * `usermod -r -G`, `usermod -L -e 1`) on the same files LinuxBackend reads, and sudo's own
 * `visudo -c` for the passwordless-sudo drop-in. Linux has no per-membership expiry and no
 * scheduler that survives a reboot without the agent: the agent is the only enforcer here (it
 * removes an elevation whose end has passed first thing at start, before it talks to the server).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ELEVATION_ACCOUNT } from '../../protocol/accounts.ts';
import { GROUPS, type Group } from '../../protocol/groups.ts';
import type { LocalAccount } from '../../protocol/messages.ts';
import { AccountError, GRANT_ID, isOwnershipTag, MARKER_GROUP, type LogoffResult } from './backend.ts';
import type { ElevationBackend, GroupMember, PrivilegedSnapshot } from './elevation.ts';
import { EXPIRED, members, pickGroup, type Row } from './linux-files.ts';
import { elevatedPidsOf, killAll } from './procs.ts';

const LINUX_ACCOUNT = ELEVATION_ACCOUNT.linux;
/** The groups whose members are administrators (the guard watches them all). */
const ADMIN_GROUPS = ['sudo', 'wheel', 'admin'];
/** Our drop-ins: sudo reads every file of sudoers.d whose name has no '.' and no trailing '~'. */
const DROP_IN_PREFIX = 'jit-access-';
const MARKER_LINE = '# jit-access grant=';

export interface LinuxElevationHost {
  /** Sandbox root (tests), or undefined for the real system. */
  root: string | undefined;
  /** Runs a shadow-utils command with --prefix for the sandbox, mapping failures to AccountErrors. */
  cmd(file: string, argv: string[], ok?: number[]): Promise<unknown>;
  prefix(): string[];
  table(file: 'passwd' | 'shadow' | 'group'): Promise<Row[]>;
  /** Refuses a uid this agent may not act on by number (see LinuxBackend.assertKillable). */
  assertKillable(uid: string): void;
}

export class LinuxElevation implements ElevationBackend {
  readonly capabilities: readonly string[];
  private readonly visudo = ['/usr/sbin/visudo', '/usr/bin/visudo'].find((f) => existsSync(f));

  constructor(private readonly h: LinuxElevationHost) {
    this.capabilities = ['elevate-account', ...(this.visudo ? ['passwordless-sudo'] : [])];
  }

  async account(name: string): Promise<LocalAccount | null> {
    if (!LINUX_ACCOUNT.test(name)) throw new AccountError('INVALID_NAME', `invalid account name ${JSON.stringify(name)}`);
    return (await this.accounts()).find((a) => a.name === name) ?? null;
  }

  async accounts(): Promise<LocalAccount[]> {
    const [passwd, groups, uidMin] = await Promise.all([this.h.table('passwd'), this.h.table('group'), this.uidMin()]);
    const admins = new Set(groups.filter((g) => ADMIN_GROUPS.includes(g[0]!)).flatMap(members));
    const marked = new Set(members(groups.find((g) => g[0] === MARKER_GROUP) ?? []));
    return passwd.map((pw) => {
      const uid = Number(pw[2]);
      const shell = pw[6] ?? '';
      return {
        name: pw[0]!,
        id: pw[2] ?? '',
        system: !(uid >= uidMin) || uid === 65534 || /\/(nologin|false)$/.test(shell),
        admin: admins.has(pw[0]!),
        managed: marked.has(pw[0]!) && isOwnershipTag(pw[4] ?? ''),
      };
    });
  }

  /** A supplementary member, or the group is the account's primary group (which usermod -r -G cannot take away). */
  async isMember(name: string, group: Group): Promise<boolean> {
    const [groups, passwd] = await Promise.all([this.h.table('group'), this.h.table('passwd')]);
    const unix = this.unixGroup(group, groups);
    const row = groups.find((g) => g[0] === unix) ?? [];
    return members(row).includes(name) || (row[2] !== undefined && passwd.find((pw) => pw[0] === name)?.[3] === row[2]);
  }

  async addMember(name: string, group: Group): Promise<void> {
    const unix = this.unixGroup(group, await this.h.table('group'));
    await this.h.cmd('usermod', [...this.h.prefix(), '-a', '-G', unix, '--', name]);
  }

  async removeMember(name: string, group: Group): Promise<void> {
    const unix = this.unixGroup(group, await this.h.table('group'));
    await this.removeFromGroup({ group: unix, name });
  }

  async removeFromGroup(m: GroupMember): Promise<void> {
    const groups = await this.h.table('group');
    if (!members(groups.find((g) => g[0] === m.group) ?? []).includes(m.name)) return;
    await this.h.cmd('usermod', [...this.h.prefix(), '-r', '-G', m.group, '--', m.name]);
  }

  async endSessions(name: string, action: 'logoff' | 'notify'): Promise<LogoffResult> {
    const info = await this.account(name);
    if (!info) return { ended: 0 };
    this.h.assertKillable(info.id);
    // The elevated ones first, while the account's own processes still link them to it (a root
    // shell's parent is the sudo its user ran; killed first, that link would be gone).
    const elevated = await killAll(info.id, 10, elevatedPidsOf);
    if (elevated.left.length) throw new AccountError('COMMAND_FAILED', `processes started from ${name}'s sessions still run: ${elevated.left.slice(0, 5).join(', ')}`);
    if (action === 'notify') return { ended: elevated.killed };
    // As LinuxBackend.logoff: logind first where it runs (its exit status is no verdict).
    if (!this.h.root) await this.h.cmd('loginctl', ['terminate-user', info.id], [0, 1]).catch(() => {});
    const own = await killAll(info.id);
    if (own.left.length) throw new AccountError('COMMAND_FAILED', `uid ${info.id} still runs ${own.left.slice(0, 5).join(', ')} after SIGKILL`);
    return { ended: elevated.killed + own.killed };
  }

  async lock(name: string): Promise<void> {
    const info = await this.account(name);
    if (!info) return;
    if (info.system) throw new AccountError('NOT_MANAGED', `${name} is a system account: not locked`);
    await this.h.cmd('usermod', [...this.h.prefix(), '-L', '-e', EXPIRED, '--', name]);
  }

  async snapshot(): Promise<PrivilegedSnapshot> {
    const [groups, passwd, sudoers] = await Promise.all([this.h.table('group'), this.h.table('passwd'), this.sudoersDigest()]);
    return {
      members: groups.filter((g) => ADMIN_GROUPS.includes(g[0]!)).flatMap((g) => members(g).map((name) => ({ group: g[0]!, name }))),
      accounts: passwd.map((r) => r[0]!),
      sudoers,
    };
  }

  async grantSudo(name: string, grantId: string): Promise<void> {
    if (!this.visudo) throw new AccountError('UNSUPPORTED_GROUP', 'passwordless sudo needs sudo (visudo) installed');
    if (!LINUX_ACCOUNT.test(name)) throw new AccountError('INVALID_NAME', `invalid account name ${JSON.stringify(name)}`);
    const file = this.dropIn(grantId);
    const account = await this.account(name);
    if (!account) throw new AccountError('NOT_FOUND', `no account ${name}`);
    // By uid (#1001), not by name: sudoers reads an upper-case name as an alias and ALL as everyone.
    // Written beside it under a name sudo skips ('.' in it), checked by sudo's own parser, then
    // renamed into place: sudo never reads a half-written or invalid file.
    const tmp = `${file}.new`;
    await writeFile(tmp, `${MARKER_LINE}${grantId} (removed at the end of the grant; account ${name})\n#${account.id} ALL=(ALL:ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
    try {
      await this.h.cmd(this.visudo, ['-c', '-q', '-f', tmp]);
      await rename(tmp, file);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async revokeSudo(grantId: string): Promise<void> {
    const file = this.dropIn(grantId);
    const text = await readFile(file, 'utf8').catch(() => null);
    if (text === null) return;
    if (!text.startsWith(`${MARKER_LINE}${grantId} `)) throw new AccountError('NOT_MANAGED', `${file} lacks the jit-access marker`);
    await rm(file, { force: true });
  }

  private dropIn(grantId: string): string {
    if (!GRANT_ID.test(grantId)) throw new AccountError('COMMAND_FAILED', 'grant id unfit for a file name');
    return path.join(this.sudoersDir(), `${DROP_IN_PREFIX}${grantId.replace(/\./g, '_')}`);
  }

  private sudoersDir(): string {
    return path.join(this.h.root ?? '/', 'etc', 'sudoers.d');
  }

  private async sudoersDigest(): Promise<string> {
    const etc = path.join(this.h.root ?? '/', 'etc');
    const names = (await readdir(this.sudoersDir()).catch(() => [] as string[])).filter((n) => !n.startsWith(DROP_IN_PREFIX)).sort();
    const hash = createHash('sha256');
    for (const f of [path.join(etc, 'sudoers'), ...names.map((n) => path.join(this.sudoersDir(), n))]) {
      hash.update(`${f}\n`).update((await readFile(f).catch(() => Buffer.alloc(0))) as Buffer);
    }
    return hash.digest('hex');
  }

  private async uidMin(): Promise<number> {
    const defs = await readFile(path.join(this.h.root ?? '/', 'etc', 'login.defs'), 'utf8').catch(() => '');
    return Number(/^\s*UID_MIN\s+(\d+)/m.exec(defs)?.[1] ?? 1000);
  }

  private unixGroup(group: Group, groups: Row[]): string {
    if (!GROUPS.includes(group)) throw new AccountError('UNSUPPORTED_GROUP', `unknown group ${group}`);
    const unix = pickGroup(group, groups);
    if (!unix) throw new AccountError('UNSUPPORTED_GROUP', `no Linux group for ${group} here`);
    return unix;
  }
}
