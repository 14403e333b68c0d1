/**
 * Values of the Windows backend (windows.ts), checked before they reach a script: the ownership
 * description, passwords, expiry instants, local account SIDs, group SIDs; and keeping a password
 * out of error messages.
 */
import type { Group } from '../../protocol/groups.ts';
import { AccountError } from './backend.ts';
import { GROUP_SIDS, MARKER } from './windows-common.ts';
import { DESCRIPTION_MAX } from './windows-scripts.ts';

/**
 * The ownership marker for a grant: `jit-access grant=<id>`, cut to the documented 48
 * characters of a description (notes §1 [W1]). Why cut: the server's grant ids are UUIDs
 * (36 characters), 53 with the marker; the first 31 characters still identify a grant for a
 * human, and nothing reads the id back (ownership is the marker prefix).
 *
 * Printable ASCII only: quotes, `$(…)` and backticks are fine (psQuote makes
 * them literal), but the session transport is ASCII-only (windows-scripts.ts, TRANSPORT).
 */
export function descriptionFor(grantId: string): string {
  if (!/^[\x20-\x7E]+$/.test(grantId)) {
    throw new AccountError('COMMAND_FAILED', 'grant id unfit for the account description (printable ASCII only)');
  }
  return (MARKER + grantId).slice(0, DESCRIPTION_MAX);
}

/**
 * Passwords: printable ASCII, 1–127 characters (New-LocalUser's documented maximum).
 * Why ASCII: the helper's stdin is decoded with the console code page, so any other character
 * could arrive as a different one and set a password nobody knows. Why no CR/LF: they end it.
 */
export function assertPassword(password: string): void {
  if (!/^[\x20-\x7E]{1,127}$/.test(password)) {
    throw new AccountError('COMMAND_FAILED', 'password must be 1-127 printable ASCII characters');
  }
}

export function expiryMs(at: Date | undefined): number {
  const ms = at?.getTime();
  if (ms === undefined || !Number.isSafeInteger(ms) || ms <= 0) throw new AccountError('COMMAND_FAILED', 'enabling needs a valid expiresAt (the OS-level backstop)');
  return ms;
}

/** A local account's SID: the machine's S-1-5-21-x-y-z domain, then the RID (captured). */
export const LOCAL_ACCOUNT_SID = /^S-1-5-21-\d{1,10}-\d{1,10}-\d{1,10}-(\d{1,10})$/;

export function groupSid(group: Group): string {
  const sid = (GROUP_SIDS as Partial<Record<string, string>>)[group];
  if (!sid) throw new AccountError('UNSUPPORTED_GROUP', `no Windows group for ${String(group)}`);
  return sid;
}

/** Never let a password into an error message, whatever a child printed. */
export function redact(message: string, secret: string): string {
  return message.split(secret).join('***');
}
