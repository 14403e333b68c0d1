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

/** A grant id as the restore timers take it (a task name, a launchd label): the server's UUIDs. */
export const RESTORE_GRANT_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** One membership the OS takes away by itself at `at` if the agent cannot (RestoreTimers). */
export interface RestoreSpec {
  grantId: string;
  /** The account as the grant names it (ElevationBackend.account resolves it). */
  name: string;
  group: Group;
  /** The grant's end plus RESTORE_GRACE_MS: the agent, when alive, acts first and disarms it. */
  at: Date;
  /** Also end the account's sessions (the grant's endAction is logoff). */
  logoff: boolean;
  /** Take the membership away: we added it (false: it predates the grant, and stays). */
  membership: boolean;
  /** Remove this grant's passwordless-sudo drop-in (Linux and macOS only; only if it carries our marker). */
  sudo: boolean;
}

/**
 * The OS backstop of an elevation: a timer kept by the OS (Windows: a scheduled task; macOS: a
 * launchd job) that takes a membership we added away at the end even when the agent is dead
 * then. It acts once, only on the account it was armed for, and never touches anything else.
 * Linux has none: no per-membership expiry exists there, and the agent alone enforces the end.
 */
export interface RestoreTimers {
  /** Registers (or replaces) the timer of `s.grantId` and reads it back; throws leaving none on failure. */
  arm(s: RestoreSpec): Promise<void>;
  /** Removes the timer of that grant; missing = success. */
  disarm(grantId: string): Promise<void>;
  /** Uninstall: every restore timer of ours. */
  drop(): Promise<void>;
}

export interface ElevationBackend {
  /** Where the OS can keep a restore timer (Windows, macOS); absent on Linux. */
  readonly restoreTimers?: RestoreTimers;
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
