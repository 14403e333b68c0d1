/**
 * elevate-account and the rogue-admin guard on Windows (scripts in windows-elevation-scripts.ts).
 * Accounts are named by local name, `DOMAIN\user` or SID, and acted on by SID: the membership
 * (Add-/Remove-LocalGroupMember on the well-known group SID, read back), the logoff (the same WTS
 * pass as for our accounts, by the account's name and domain, and every process of the SID). A
 * logon token keeps the Administrators SID until its session ends, so `notify` (no logoff) leaves
 * the rights in the open sessions; only `logoff` ends them (see README). Passwordless sudo has no
 * Windows meaning: no capability. The restore timer (a scheduled task taking the membership away
 * at end + grace if the agent is dead) is windows-restore.ts.
 */
import { z } from 'zod';
import { ELEVATION_ACCOUNT, isBuiltInWindowsSid as isSystemSid } from '../../protocol/accounts.ts';
import type { Group } from '../../protocol/groups.ts';
import type { LocalAccount } from '../../protocol/messages.ts';
import { AccountError, type LogoffResult } from './backend.ts';
import type { ElevationBackend, GroupMember, PrivilegedSnapshot } from './elevation.ts';
import { LogoffPass, psList } from './windows-result.ts';
import { WindowsRestoreTimers } from './windows-restore-arm.ts';
import { logoffUntilDone } from './windows-logoff.ts';
import { groupSid } from './windows-values.ts';
import type { Op, PsParam } from './windows-scripts.ts';

const WINDOWS_ACCOUNT = ELEVATION_ACCOUNT.windows;
/** The groups the guard watches: Administrators, and Power Users (granted on Windows too). */
const WATCHED = [groupSid('Administrators'), groupSid('Power Users')];

const Account = z.object({ name: z.string(), sid: z.string(), domain: z.string(), local: z.boolean(), managed: z.boolean(), admin: z.boolean() });
const AccountResult = z.object({ ok: z.literal(true), account: Account.nullable() });
const ListResult = z.object({ ok: z.literal(true), users: psList(z.object({ name: z.string(), sid: z.string(), managed: z.boolean(), admin: z.boolean() })) });
const MemberResult = z.object({ ok: z.literal(true), member: z.boolean() });
const MembersResult = z.object({ ok: z.literal(true), members: psList(z.object({ group: z.string(), sid: z.string(), name: z.string() })), users: psList(z.string()) });
const LockResult = z.object({ ok: z.literal(true), locked: z.boolean() });

type Run = <T extends z.ZodType>(op: Op, params: Record<string, PsParam>, schema: T) => Promise<z.infer<T>>;

export class WindowsElevation implements ElevationBackend {
  readonly capabilities = ['elevate-account'] as const;
  /** Scheduled tasks that take a membership away at the end if the agent cannot (windows-restore.ts). */
  readonly restoreTimers: WindowsRestoreTimers;

  constructor(
    private readonly run: Run,
    private readonly logoffDelays: number[],
    private readonly sleep: (ms: number) => Promise<void>,
    helperDir: string,
  ) {
    this.restoreTimers = new WindowsRestoreTimers({ run, helperDir, sidOf: async (name) => (await this.resolve(name))?.sid ?? null });
  }

  async account(name: string): Promise<LocalAccount | null> {
    const a = await this.resolve(name);
    return a ? { name: a.domain ? `${a.domain}\\${a.name}` : a.name, id: a.sid, system: isSystemSid(a.sid), admin: a.admin, managed: a.managed } : null;
  }

  async accounts(): Promise<LocalAccount[]> {
    const r = await this.run('elevList', {}, ListResult);
    return r.users.map((u) => ({ name: u.name, id: u.sid, system: isSystemSid(u.sid), admin: u.admin, managed: u.managed }));
  }

  async isMember(name: string, group: Group): Promise<boolean> {
    return this.member(await this.sidOf(name), group, 'check');
  }

  async addMember(name: string, group: Group): Promise<void> {
    if (!(await this.member(await this.sidOf(name), group, 'add'))) throw new AccountError('COMMAND_FAILED', `${name} is not in ${group} after Add-LocalGroupMember`);
  }

  async removeMember(name: string, group: Group): Promise<void> {
    await this.removeFromGroup({ group: groupSid(group), name: await this.sidOf(name) });
  }

  /** The guard's members are SIDs (`name`), in group SIDs. */
  async removeFromGroup(m: GroupMember): Promise<void> {
    const r = await this.run('elevMember', { Sid: m.name, GroupSid: m.group, Action: 'remove' }, MemberResult);
    if (r.member) throw new AccountError('COMMAND_FAILED', `${m.label ?? m.name} is still in ${m.group} after Remove-LocalGroupMember (through a nested group?)`);
  }

  /** logoff: every session and process of the account, pass after pass (as WindowsBackend.logoff). notify: nothing to end here. */
  async endSessions(name: string, action: 'logoff' | 'notify'): Promise<LogoffResult> {
    const a = await this.resolve(name);
    if (!a || action === 'notify') return { ended: 0 };
    return { ended: await logoffUntilDone(name, () => this.run('elevLogoff', { Sid: a.sid, User: a.name, Domain: a.domain }, LogoffPass), this.logoffDelays, this.sleep) };
  }

  /** A rogue admin made during the window (by SID): Disable-LocalUser, read back. Never deleted. */
  async lock(sid: string): Promise<void> {
    if (isSystemSid(sid)) throw new AccountError('NOT_MANAGED', `${sid} is a built-in account: not locked`);
    const r = await this.run('elevLock', { Sid: sid }, LockResult);
    if (!r.locked) throw new AccountError('COMMAND_FAILED', `${sid} is not disabled after Disable-LocalUser`);
  }

  async snapshot(): Promise<PrivilegedSnapshot> {
    const r = await this.run('elevMembers', { GroupSids: WATCHED }, MembersResult);
    return { members: r.members.map((m) => ({ group: m.group, name: m.sid, label: m.name })), accounts: r.users, sudoers: '' };
  }

  grantSudo(): Promise<void> {
    return Promise.reject(new AccountError('UNSUPPORTED_GROUP', 'sudo has no Windows meaning'));
  }

  async revokeSudo(): Promise<void> {}

  private resolve(name: string) {
    if (!WINDOWS_ACCOUNT.test(name)) throw new AccountError('INVALID_NAME', `invalid account ${JSON.stringify(name)}`);
    return this.run('elevAccount', { Account: name }, AccountResult).then((r) => r.account);
  }

  private async sidOf(name: string): Promise<string> {
    const a = await this.resolve(name);
    if (!a) throw new AccountError('NOT_FOUND', `no account ${name}`);
    return a.sid;
  }

  private async member(sid: string, group: Group, action: 'check' | 'add' | 'remove'): Promise<boolean> {
    return (await this.run('elevMember', { Sid: sid, GroupSid: groupSid(group), Action: action }, MemberResult)).member;
  }
}
