/**
 * elevate-account and the rogue-admin guard on macOS, through the same tools as MacBackend:
 * `dseditgroup -o edit -a|-d NAME -t user admin` and `-o checkmember` (the membership API, nested
 * groups included), `pwpolicy -disableuser` to lock a rogue account, launchctl bootout and pkill
 * for a logoff, and `ps` to find what was started from the person's sessions with sudo or su.
 * admin membership is checked live by macOS for most rights, but authorisations already granted
 * (and a root shell opened with sudo) outlive it: hence the logoff, or at least those processes.
 * Passwordless sudo (capability 'passwordless-sudo'): a sudoers drop-in per grant, checked by
 * visudo and carrying our marker, as on Linux (macos-sudo.ts); the guard's snapshot holds a
 * digest of the sudoers files but our drop-ins, so a change to them during the window is reported.
 * The OS backstop of a membership we added (restoreTimers): a launchd job per grant that takes
 * the account out of admin at the end plus the grace if the agent cannot (macos-restore.ts).
 */
import { ELEVATION_ACCOUNT } from '../../protocol/accounts.ts';
import type { Group } from '../../protocol/groups.ts';
import type { LocalAccount } from '../../protocol/messages.ts';
import { AccountError, MARKER_GROUP, isOwnershipTag, type LogoffResult } from './backend.ts';
import type { ElevationBackend, GroupMember, PrivilegedSnapshot } from './elevation.ts';
import { MAC_BIN, actionableUid, failure, type MacDirectory } from './macos-dir.ts';
import { MacRestoreTimers } from './macos-restore.ts';
import { grantMacSudo, revokeMacSudo, sudoersDigest } from './macos-sudo.ts';
import { elevatedAmong, UNSET, type Proc } from './procs.ts';

const MAC_ACCOUNT = ELEVATION_ACCOUNT.macos;
/** The OS group for each wizard group: admin for Administrators; every local user is in staff. */
const MAC_GROUP: Partial<Record<Group, string>> = { Administrators: 'admin', Users: 'staff' };

export class MacElevation implements ElevationBackend {
  readonly capabilities = ['elevate-account', 'passwordless-sudo'] as const;
  readonly restoreTimers: MacRestoreTimers;

  constructor(private readonly dir: MacDirectory) {
    this.restoreTimers = new MacRestoreTimers(dir);
  }

  async account(name: string): Promise<LocalAccount | null> {
    if (!MAC_ACCOUNT.test(name)) throw new AccountError('INVALID_NAME', `invalid account name ${JSON.stringify(name)}`);
    const rec = await this.dir.readUser(name);
    if (!rec) return null;
    const managed = isOwnershipTag(rec.realName) && ((await this.dir.groupMembers(MARKER_GROUP)) ?? []).includes(name);
    return { name, id: rec.uid, system: isSystem(name, rec.uid), admin: await this.dir.isMember(name, 'admin'), managed };
  }

  async accounts(): Promise<LocalAccount[]> {
    const [uids, admins, marked] = await Promise.all([this.dir.uids(), this.dir.groupMembers('admin'), this.dir.groupMembers(MARKER_GROUP)]);
    return uids.map(([name, uid]) => ({ name, id: uid, system: isSystem(name, uid), admin: (admins ?? []).includes(name), managed: (marked ?? []).includes(name) }));
  }

  isMember(name: string, group: Group): Promise<boolean> {
    return this.dir.isMember(name, macGroup(group));
  }

  async addMember(name: string, group: Group): Promise<void> {
    const g = macGroup(group);
    if (!(await this.dir.isMember(name, g))) await this.dir.editGroup('-a', name, g);
    if (!(await this.dir.isMember(name, g))) throw new AccountError('COMMAND_FAILED', `${name} is not in ${g} after dseditgroup -a`);
  }

  async removeMember(name: string, group: Group): Promise<void> {
    await this.removeFromGroup({ group: macGroup(group), name });
  }

  async removeFromGroup(m: GroupMember): Promise<void> {
    if (!(await this.dir.isMember(m.name, m.group))) return;
    await this.dir.editGroup('-d', m.name, m.group);
    // Why re-check: a membership through a nested group survives -d.
    if (await this.dir.isMember(m.name, m.group)) throw new AccountError('COMMAND_FAILED', `${m.name} is still in ${m.group} after dseditgroup -d (a nested group?)`);
  }

  async endSessions(name: string, action: 'logoff' | 'notify'): Promise<LogoffResult> {
    const rec = await this.dir.readUser(name);
    if (!rec) return { ended: 0 };
    const uid = actionableUid(name, rec.uid);
    // The elevated ones first, while the account's own processes still link them to it.
    const elevated = elevatedAmong(await this.processes(), uid, process.pid);
    if (elevated.length) await this.dir.mustRun(MAC_BIN.kill, ['-9', ...elevated.map(String)], `ending what ${name} started with sudo or su`, [0, 1]);
    if (action === 'notify') return { ended: elevated.length };
    const own = (await this.dir.pids(uid)).size;
    // As MacBackend.logoff: the login session and the background domain, then every process.
    for (const domain of [`gui/${uid}`, `user/${uid}`]) await this.dir.exec(MAC_BIN.launchctl, ['bootout', domain]);
    for (const flag of ['-U', '-u']) await this.dir.mustRun(MAC_BIN.pkill, ['-KILL', flag, uid], `killing ${name}'s processes`, [0, 1]);
    return { ended: elevated.length + own };
  }

  async lock(name: string): Promise<void> {
    const rec = await this.dir.readUser(name);
    if (!rec) return;
    if (isSystem(name, rec.uid)) throw new AccountError('NOT_MANAGED', `${name} is a system account: not locked`);
    await this.dir.markDisabled(name);
  }

  async snapshot(): Promise<PrivilegedSnapshot> {
    const [admins, uids, sudoers] = await Promise.all([this.dir.groupMembers('admin'), this.dir.uids(), sudoersDigest(this.dir)]);
    return { members: (admins ?? []).map((name) => ({ group: 'admin', name })), accounts: uids.map(([n]) => n), sudoers };
  }

  grantSudo(name: string, grantId: string): Promise<void> {
    return grantMacSudo(this.dir, name, grantId);
  }

  revokeSudo(grantId: string): Promise<void> {
    return revokeMacSudo(this.dir, grantId);
  }

  /** `ps -axo pid=,ppid=,ruid=,uid=`: every process with its parent and its real and effective uid. */
  private async processes(): Promise<Proc[]> {
    const r = await this.dir.exec(MAC_BIN.ps, ['-axo', 'pid=,ppid=,ruid=,uid=']);
    if (r.code !== 0) throw failure('listing processes', r);
    return r.stdout.split('\n').flatMap((l) => {
      const f = l.trim().split(/\s+/);
      return f.length === 4 && f.every((x) => /^\d+$/.test(x)) ? [{ pid: Number(f[0]), ppid: Number(f[1]), ruid: f[2]!, euid: f[3]!, loginuid: UNSET }] : [];
    });
  }
}

/** macOS system accounts: uid below 501, or a name with a leading underscore (daemons). */
function isSystem(name: string, uid: string): boolean {
  return name.startsWith('_') || !/^\d+$/.test(uid) || Number(uid) < 501;
}

function macGroup(group: Group): string {
  const g = MAC_GROUP[group];
  if (!g) throw new AccountError('UNSUPPORTED_GROUP', `macOS has no group for ${group}`);
  return g;
}
