/**
 * The primitives of elevate-account (an existing account put in a group for a while) and of the
 * rogue-admin guard, one implementation per OS beside its AccountBackend. No policy lives here:
 * agent/elevation.ts and agent/guard.ts decide what to call and when.
 *
 * Unlike the AccountBackend's, these act on accounts that are not ours: what marks a membership
 * as ours is the grant's record in the agent's state (it says whether we added it), and a
 * sudoers drop-in carries our marker in its name and first line.
 */
import type { Group } from '../../protocol/groups.ts';
import type { LocalAccount } from '../../protocol/messages.ts';
import type { LogoffResult } from './backend.ts';

/** One member of a privileged group, by the OS's own group name (sudo, wheel, admin, a SID…). */
export interface GroupMember {
  group: string;
  /** What the OS acts on: a name (Unix) or a SID (Windows). */
  name: string;
  /** For people, where `name` is not (Windows: DOMAIN\name). */
  label?: string;
}

/** The privileged groups and what else grants rights, at one moment. */
export interface PrivilegedSnapshot {
  members: GroupMember[];
  /** Every local account then, by `GroupMember.name`'s kind: a rogue member not among them was made during the window. */
  accounts: string[];
  /** A digest of the sudoers files but our own drop-ins ('' where the OS has none). */
  sudoers: string;
}

export interface ElevationBackend {
  /** What this OS's agent can do (protocol CAPABILITIES): reported to the server in the inventory. */
  readonly capabilities: readonly string[];
  /** Any local account, ours or not, with whether it is a system account; null when missing. */
  account(name: string): Promise<LocalAccount | null>;
  /** Every local account (the inventory). */
  accounts(): Promise<LocalAccount[]>;
  isMember(name: string, group: Group): Promise<boolean>;
  /** Adds the account to the OS group for `group`; already a member = success. */
  addMember(name: string, group: Group): Promise<void>;
  /** Takes the account out of the OS group for `group`; not a member = success. */
  removeMember(name: string, group: Group): Promise<void>;
  /** Takes a member out of an OS group by the OS's name for it (the guard). */
  removeFromGroup(member: GroupMember): Promise<void>;
  /**
   * At the end of an elevation: `logoff` ends every session and process of the account; both end
   * the processes started from its sessions that run as another identity (a root shell opened
   * with sudo or su), which keep the rights after the membership is gone.
   */
  endSessions(name: string, action: 'logoff' | 'notify'): Promise<LogoffResult>;
  /** Makes a foreign account unusable without deleting it (a rogue admin made during the window; by `GroupMember.name`). */
  lock(name: string): Promise<void>;
  snapshot(): Promise<PrivilegedSnapshot>;
  /** Passwordless sudo for the window: a validated drop-in naming the account, with our marker. */
  grantSudo(name: string, grantId: string): Promise<void>;
  /** Removes that drop-in; missing = success. */
  revokeSudo(grantId: string): Promise<void>;
}
