/**
 * What a deleted macOS account can leave behind, found by its saved uid (and, for the files
 * named after it, its name), removed until nothing is left.
 *
 * Cleaned: the home (/Users/NAME, if still there and owned by the uid: sysadminctl keeps it
 * when it fails, dscl -delete never removes it); files owned by the uid in /private/tmp,
 * /private/var/tmp, /private/var/folders (the per-user temporary and cache folders), the at
 * spool /private/var/at (jobs, spool) and /private/var/mail; the crontab
 * /private/var/at/tabs/NAME and sudo's timestamp /private/var/db/sudo/ts/NAME ⚠️ paths; the
 * backstop timer's launchd job and plist (macos-backstop.ts), if nobody disarmed it.
 * Not cleaned: files the account left anywhere else (/Users/Shared, other volumes, folders an
 * admin made writable), System V IPC objects, launchd's per-uid override files, log entries.
 */
import { AccountError, assertValidName, type AccountRef } from './backend.ts';
import { disarmMacBackstop } from './macos-backstop.ts';
import { actionableUid, MAC_BIN, statOf, type MacDirectory } from './macos-dir.ts';

/** Shared places where an account's files outlive it. find -x keeps to each one's own volume. */
const LEFTOVER_ROOTS = ['/private/tmp', '/private/var/tmp', '/private/var/folders', '/private/var/at', '/private/var/mail'];
/** Files named after the account (root may own them): sudo's timestamp, the crontab ⚠️. */
const byName = (name: string) => [`/private/var/db/sudo/ts/${name}`, `/private/var/at/tabs/${name}`];

export async function purgeMac(dir: MacDirectory, account: AccountRef): Promise<void> {
  assertValidName(account.name);
  const uid = actionableUid(account.name, account.id);
  const records = await dir.uids();
  // The uid is someone's again (not ours: the policy layer never hands one out twice): hands off.
  if (records.some(([, u]) => u === uid)) return;
  // A new account of the same name (another uid) owns what is named after it.
  const named = records.some(([n]) => n === account.name) ? [] : byName(account.name);
  const home = `/Users/${account.name}`;
  // Whatever still runs under the uid (the record was deleted by someone else while in use).
  for (const flag of ['-U', '-u']) await dir.mustRun(MAC_BIN.pkill, ['-KILL', flag, uid], `ending uid ${uid}'s processes`, [0, 1]);

  const h = await statOf(dir, home);
  if (h?.uid === uid) {
    if (h.type === 'Directory') {
      // Why chflags first: an immutable (uchg) file stops even root's rm. -R does not follow symlinks.
      await dir.mustRun(MAC_BIN.chflags, ['-R', 'nouchg', home], `clearing flags in ${home}`, [0, 1]);
      await dir.mustRun(MAC_BIN.rm, ['-rf', home], `removing ${home}`, [0, 1]);
    } else {
      await dir.mustRun(MAC_BIN.rm, ['-f', home], `removing ${home}`, [0, 1]); // a symlink: the link only
    }
  }
  // -x: not into other volumes mounted below; BSD find follows no symlink (-P is the default);
  // a numeric -user is the uid when no account has that name. Exit 1 = something could not go.
  await dir.mustRun(MAC_BIN.find, ['-x', ...LEFTOVER_ROOTS, '-user', uid, '-delete'], `removing uid ${uid}'s files`, [0, 1]);
  for (const p of named) await dir.mustRun(MAC_BIN.rm, ['-f', p], `removing ${p}`, [0, 1]);
  // The backstop timer is named after the account too: gone with it, whoever forgot to disarm it.
  if (named.length) await disarmMacBackstop(dir, account.name);

  // Read back: whatever is still there is reported, and the caller retries.
  const left: string[] = [];
  if ((await statOf(dir, home))?.uid === uid) left.push(home);
  const found = await dir.mustRun(MAC_BIN.find, ['-x', ...LEFTOVER_ROOTS, '-user', uid, '-print'], `looking for uid ${uid}'s files`, [0, 1]);
  left.push(...found.stdout.split('\n').filter(Boolean));
  for (const p of named) if (await statOf(dir, p)) left.push(p);
  if (left.length) {
    throw new AccountError('COMMAND_FAILED', `uid ${uid} left: ${left.slice(0, 5).join(', ')}${left.length > 5 ? ` and ${left.length - 5} more` : ''}`);
  }
}
