/**
 * The macOS backstop timer: a launchd daemon that makes the account dead at its grant's end even
 * if the agent is not running then (crashed, hung, killed). One job per account:
 * /Library/LaunchDaemons/com.jit-access.backstop.NAME.plist (root:wheel 0644), loaded into the
 * system domain, running BACKSTOP_SCRIPT (macos-backstop-script.ts) as root. How a daemon of ours
 * is written, loaded, read back and removed (loadDaemon, removeDaemon, below) also serves the
 * elevation's restore job (macos-restore.ts).
 *
 * When it runs (launchd.plist(5)):
 *  - StartCalendarInterval, one entry for each minute 0–59 with every other field a wildcard: at
 *    the start of every minute, in any time zone. launchd runs a calendar job that came due while
 *    the Mac slept once at wake ("coalesced into one event"). Why not one entry for the end's
 *    minute: the entries are local time without a year, so a time-zone change (a travelling
 *    laptop) or a DST fold or gap would move or skip it. Why not StartInterval: its firings during
 *    sleep are lost ("missed due to shortcomings in kqueue(3)") and nothing runs at wake.
 *  - RunAtLoad: at bootstrap (arming after the end acts at once) and at boot, when launchd loads
 *    /Library/LaunchDaemons (a Mac that was off at the end).
 *  - ProcessType Interactive: no resource limits, so the one-second polling of the last two
 *    minutes is not stretched by the throttling applied to Standard/Background jobs. Each other
 *    run lasts a few milliseconds.
 * The script acts only from END (the end, rounded up to the second: never early) on, polling
 * every second from BACKSTOP_WINDOW_SECONDS before it.
 *
 * Worst-case lateness, awake: the run started by the last minute firing before the end (or the
 * one before, if launchd's 10 s ThrottleInterval delayed it) is already polling, so the account is
 * disabled about 1 s after END (up to 2 s after the instant asked, with the rounding) plus the run
 * time of the commands (tens to hundreds of ms each ⚠️ not measured). Asleep at the end: seconds
 * after wake. Off at the end: at boot. In both cases pwpolicy's account policy (set at creation
 * and enable) has refused authentication since the exact second.
 *
 * The job is not unloaded after acting: it keeps making the account dead every minute (an account
 * the agent could not delete stays dead; what its crontab starts is killed again) until the agent
 * disarms it, and does nothing once the record is gone or not ours. The agent disarms it in the
 * removal; purge and dropMarker remove any that is left.
 *
 * ⚠️ To check on a real Mac: launchd takes the plist (`launchctl bootstrap system` exit 0, `print`
 * exit 0, 113 once booted out); the 60-entry calendar fires every minute and once at wake;
 * RunAtLoad at boot; `install -S -o root -g wheel -m 0644`; bash 3.2's /bin/sh runs the script;
 * dscl -plist single-key reads print one <string> a line; the gap between bootout and bootstrap
 * when re-arming is only milliseconds (bootout may return before the job is gone: then arming
 * throws and the agent retries).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AccountError, ACCOUNT_NAME, assertValidName } from './backend.ts';
import { BACKSTOP_SCRIPT } from './macos-backstop-script.ts';
import { MAC_BIN, statOf, type MacDirectory } from './macos-dir.ts';
import { expiryEpochSeconds, parsePlist, plistXml, type PlistValue } from './macos-plist.ts';

export { BACKSTOP_SCRIPT, BACKSTOP_WINDOW_SECONDS } from './macos-backstop-script.ts';

/** Where launchd loads system daemons from, at boot and with `bootstrap system`. */
export const LAUNCH_DAEMONS = '/Library/LaunchDaemons';
const LABEL_PREFIX = 'com.jit-access.backstop.';
/** A file of ours in LAUNCH_DAEMONS, and the account it is for. */
const OUR_PLIST = /^com\.jit-access\.backstop\.([a-z][a-z0-9_-]{0,19})\.plist$/;

export const backstopLabel = (name: string): string => `${LABEL_PREFIX}${name}`;
export const backstopPlistPath = (name: string): string => `${LAUNCH_DAEMONS}/${backstopLabel(name)}.plist`;

/** The job, as written to its plist and expected back. */
export function backstopJob(name: string, uid: string, endEpoch: number): { [key: string]: PlistValue } {
  return {
    Label: backstopLabel(name),
    ProgramArguments: [MAC_BIN.sh, '-c', BACKSTOP_SCRIPT, 'jit', name, uid, String(endEpoch)],
    RunAtLoad: true,
    StartCalendarInterval: Array.from({ length: 60 }, (_, minute) => ({ Minute: minute })),
    ProcessType: 'Interactive',
  };
}

/**
 * Loads a job for `name` (uid `uid`, an actionable one) ending at `at`, replacing any earlier one,
 * and reads it back from launchd and from the file. Throws when any of it fails, leaving no job.
 */
export async function armMacBackstop(dir: MacDirectory, name: string, uid: string, at: Date): Promise<'timer'> {
  await loadDaemon(dir, backstopLabel(name), backstopPlistPath(name), backstopJob(name, uid, expiryEpochSeconds(at)));
  return 'timer';
}

/** Unloads the job and deletes its plist, both read back. Missing = success. */
export async function disarmMacBackstop(dir: MacDirectory, name: string): Promise<void> {
  assertValidName(name);
  await removeDaemon(dir, backstopLabel(name), backstopPlistPath(name));
}

/** Account names of the backstop plists in LAUNCH_DAEMONS. */
export async function listMacBackstops(dir: MacDirectory): Promise<string[]> {
  return (await listDaemons(dir, OUR_PLIST)).filter((name) => ACCOUNT_NAME.test(name));
}

// ------------------------------------------------------------------ any daemon of ours
// Shared with the elevation's restore job (macos-restore.ts): the same steps, the same checks.

/**
 * Writes `job` to `file` (LAUNCH_DAEMONS/`label`.plist), loads it into the system domain in place
 * of any job of that label, and reads it back from launchd and from the file. Throws when any of
 * it fails, leaving no job and no file.
 */
export async function loadDaemon(dir: MacDirectory, label: string, file: string, job: { [key: string]: PlistValue }): Promise<void> {
  // Why out first: launchd refuses to bootstrap a label that is loaded ("5: Input/output error").
  await unloadDaemon(dir, label);
  // Why a private folder and install -S: nobody else can put a file where we read, and the
  // plist replaces the old one by a rename, so launchd never sees half of it; install sets owner
  // and mode as launchd demands (a group- or world-writable plist is not loaded ⚠️).
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'jit-launchd-'));
  try {
    const src = path.join(tmp, `${label}.plist`);
    await writeFile(src, plistXml(job), { mode: 0o600, flag: 'wx' });
    await dir.mustRun(MAC_BIN.install, ['-S', '-m', '0644', '-o', 'root', '-g', 'wheel', src, file], `installing ${file}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  try {
    await dir.mustRun(MAC_BIN.launchctl, ['bootstrap', 'system', file], `loading ${label}`);
    await dir.mustRun(MAC_BIN.launchctl, ['print', `system/${label}`], `looking up ${label}`);
    const back = await dir.mustRun(MAC_BIN.cat, [file], `reading ${file}`);
    // Why JSON: parsePlist's dicts have no prototype; key order is the order written.
    if (JSON.stringify(parsePlist(back.stdout)) !== JSON.stringify(job)) throw new AccountError('COMMAND_FAILED', `${file} does not read back as written`);
  } catch (e) {
    await removeDaemon(dir, label, file).catch(() => {});
    throw e;
  }
}

/** Unloads the job and deletes its plist, both read back. Missing = success. */
export async function removeDaemon(dir: MacDirectory, label: string, file: string): Promise<void> {
  // Why unload before deleting: a loaded job without its file could no longer be found by
  // listing the folder; a file without a job is found (and loaded again at boot, harmlessly).
  await unloadDaemon(dir, label);
  await dir.mustRun(MAC_BIN.rm, ['-f', file], `removing ${file}`);
  if (await statOf(dir, file)) throw new AccountError('COMMAND_FAILED', `${file} is still there`);
}

/** The first capture of `pattern` for each file name in LAUNCH_DAEMONS it matches. */
export async function listDaemons(dir: MacDirectory, pattern: RegExp): Promise<string[]> {
  const r = await dir.mustRun(MAC_BIN.ls, [LAUNCH_DAEMONS], `listing ${LAUNCH_DAEMONS}`);
  return r.stdout.split('\n').flatMap((l) => {
    const m = pattern.exec(l);
    return m?.[1] === undefined ? [] : [m[1]];
  });
}

/**
 * `launchctl bootout system/LABEL`, then `print` must not find it. Why not trust bootout's exit
 * status: a label that is not loaded fails too (113 ⚠️), and that is success here.
 * Why any failure of print counts as "not loaded": its message for a missing service is not
 * documented ⚠️; as root nothing else makes it fail, and a job left loaded past its account's
 * deletion does nothing (the script checks the record).
 */
export async function unloadDaemon(dir: MacDirectory, label: string): Promise<void> {
  await dir.exec(MAC_BIN.launchctl, ['bootout', `system/${label}`]);
  const p = await dir.exec(MAC_BIN.launchctl, ['print', `system/${label}`]);
  if (p.code === 0) throw new AccountError('COMMAND_FAILED', `${label} is still loaded after launchctl bootout`);
}
