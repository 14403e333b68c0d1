/**
 * Reading shadow-utils' files the way they write them: group rows and members, the shadow
 * password and expiry fields, and the day numbers shadow counts expiry in.
 */
import type { Group } from '../../protocol/groups.ts';
import { AccountError } from './backend.ts';

const DAY_MS = 86_400_000;
/** Shadow expiry day 1 (1970-01-02): "expired" for shadow-utils and PAM, our "disabled". */
export const EXPIRED = '1';

/** Which Unix group stands for each wizard group, first existing one wins. */
const UNIX_GROUPS: Record<Group, string[]> = {
  Administrators: ['sudo', 'wheel'], // Debian/Ubuntu, RHEL/Fedora/Arch
  'Power Users': [], // Linux has no such thing
  Users: ['users'],
};

export type Row = string[];

/**
 * Shadow expiry is a whole day number and the account counts as expired from 00:00 UTC
 * of that day. Why the day after: rounding `expiresAt` down would cut access short by up
 * to a day; this backstop may fire up to a day late, never early (the agent ends access on time).
 */
export function expiryDay(expiresAt: Date): number {
  return Math.floor(expiresAt.getTime() / DAY_MS) + 1;
}

export function pickGroup(group: Group, groups: Row[]): string | undefined {
  return UNIX_GROUPS[group].find((u) => groups.some((g) => g[0] === u));
}

export function members(groupRow: Row): string[] {
  return (groupRow[3] ?? '').split(',').filter(Boolean);
}

/** passwd -S says "P": a hash, not locked ('!'), not '*', not empty. */
export function passwordUsable(field: string | undefined): boolean {
  return !!field && !field.startsWith('!') && !field.startsWith('*');
}

export function expired(field: string | undefined): boolean {
  return !!field && Math.floor(Date.now() / DAY_MS) >= Number(field);
}

export function assertPassword(password: string): void {
  // Why: chpasswd reads one `name:password` per line (a newline would start another record)
  // into a C string (a NUL would silently truncate the password).
  if (!password || /[\n\0]/.test(password)) throw new AccountError('COMMAND_FAILED', 'password empty or with a newline or NUL');
}
