/**
 * The existing accounts an elevation may name, per OS: one table for the server (which refuses a
 * bad name at request time) and the agent (which checks again before it acts).
 */
import type { OperatingSystem } from './groups.ts';

/** Linux and macOS: what useradd and dscl accept, no leading '-'. */
const UNIX_ACCOUNT = /^[a-z_][a-z0-9._-]{0,31}$/i;
/** Windows: a local name or DOMAIN\user (NetBIOS domain, SAM name rules), or a SID. */
const WINDOWS_ACCOUNT = /^(?:S-1-5(?:-\d{1,10}){1,14}|(?:[A-Za-z0-9.][A-Za-z0-9.-]{0,14}\\)?[^\\/"[\]:;|=,+*?<>@\s][^\\/"[\]:;|=,+*?<>@]{0,19})$/;

export const ELEVATION_ACCOUNT: Record<OperatingSystem, RegExp> = { linux: UNIX_ACCOUNT, macos: UNIX_ACCOUNT, windows: WINDOWS_ACCOUNT };

/**
 * Windows' built-in and well-known accounts: Administrator (-500), Guest (-501), DefaultAccount
 * (-503), WDAGUtilityAccount (-504), and every SID outside S-1-5-21 (SYSTEM, LOCAL and NETWORK
 * SERVICE, the BUILTIN groups).
 */
export function isBuiltInWindowsSid(sid: string): boolean {
  return !/^S-1-5-21-/.test(sid) || /-(500|501|503|504)$/.test(sid);
}
