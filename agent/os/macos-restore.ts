/**
 * The macOS restore timer of an elevate-account grant (RestoreTimers, elevation.ts): a launchd
 * daemon that, at the grant's end plus the grace, even if the agent is dead then, removes the
 * grant's passwordless-sudo drop-in (macos-sudo.ts) and takes the account out of admin, each
 * only if the spec asks for it. One job per grant:
 * /Library/LaunchDaemons/com.jit-access.restore.GRANT.plist (root:wheel 0644), loaded into the
 * system domain, running RESTORE_SCRIPT (macos-restore-script.ts) as root with
 * `jit GRANT NAME UID admin END LOGOFF MEMBERSHIP SUDO` (the last three 0|1).
 *
 * It is the temporary account's backstop job (macos-backstop.ts) in another role: the same
 * schedule for the same reasons (RunAtLoad, StartCalendarInterval at every minute 0–59,
 * ProcessType Interactive; see there), the same steps to write, load, read back and remove it
 * (loadDaemon, removeDaemon), the same clock in the script. What differs is what it does at the
 * end, and that it does it once and then removes itself (why: macos-restore-script.ts). The agent
 * arms it when it puts the account in admin or writes a drop-in (timers.ts needsTimer) and
 * disarms it when it has taken them away itself; drop() removes every one of ours at uninstall.
 *
 * MEMBERSHIP (spec.membership): 0 when the account was in admin before the grant, where it
 * stays. SUDO (spec.sudo): the drop-in is removed only if its first line is our marker for this
 * grant, whoever holds the name by then (it gives root to the name). A spec with neither is
 * refused: such a job would have nothing to do.
 *
 * Only Administrators: that is the only group MacElevation adds anyone to (Users is staff,
 * where every local account already is, and which nobody is ever taken out of), and the only one
 * a drop-in is written for.
 *
 * Why the uid is read at arming and checked by the job: a name can be deleted and given to
 * another account during the window; the job then leaves that one's membership and sessions
 * alone (not our drop-in, see above).
 *
 * ⚠️ Not run on a real Mac: everything listed in macos-backstop.ts and macos-restore-script.ts.
 * A job whose plist is gone but which is still loaded (its own bootout failed) is not found by
 * drop(), which lists the folder; it does nothing but try to boot itself out at each run.
 */
import { AccountError } from './backend.ts';
import { RESTORE_GRANT_ID, type RestoreSpec, type RestoreTimers } from './elevation.ts';
import { LAUNCH_DAEMONS, listDaemons, loadDaemon, removeDaemon } from './macos-backstop.ts';
import { actionableUid, MAC_BIN, type MacDirectory } from './macos-dir.ts';
import { expiryEpochSeconds, type PlistValue } from './macos-plist.ts';
import { RESTORE_LABEL_PREFIX, RESTORE_NAME, RESTORE_SCRIPT } from './macos-restore-script.ts';
import { sudoDropIn } from './macos-sudo.ts';

export { RESTORE_LABEL_PREFIX, RESTORE_NAME, RESTORE_SCRIPT } from './macos-restore-script.ts';

/** The only OS group a restore job takes anyone out of. */
const RESTORE_GROUP = 'admin';
/** A restore plist of ours in LAUNCH_DAEMONS, and its grant id (checked against RESTORE_GRANT_ID after). */
const OUR_PLIST = /^com\.jit-access\.restore\.(.+)\.plist$/;

/** The label of a grant's job; throws INVALID_NAME for a grant id the script would refuse. */
export function restoreLabel(grantId: string): string {
  if (!RESTORE_GRANT_ID.test(grantId)) throw new AccountError('INVALID_NAME', `invalid grant id ${JSON.stringify(grantId)}`);
  return `${RESTORE_LABEL_PREFIX}${grantId}`;
}
export const restorePlistPath = (grantId: string): string => `${LAUNCH_DAEMONS}/${restoreLabel(grantId)}.plist`;

const flag = (b: boolean): string => (b ? '1' : '0');

/** The job of `s` for the account of uid `uid`, as written to its plist and expected back. */
export function restoreJob(s: RestoreSpec, uid: string): { [key: string]: PlistValue } {
  const end = String(expiryEpochSeconds(s.at));
  return {
    Label: restoreLabel(s.grantId),
    ProgramArguments: [MAC_BIN.sh, '-c', RESTORE_SCRIPT, 'jit', s.grantId, s.name, uid, RESTORE_GROUP, end, flag(s.logoff), flag(s.membership), flag(s.sudo)],
    RunAtLoad: true,
    StartCalendarInterval: Array.from({ length: 60 }, (_, minute) => ({ Minute: minute })),
    ProcessType: 'Interactive',
  };
}

export class MacRestoreTimers implements RestoreTimers {
  constructor(private readonly dir: MacDirectory) {}

  /**
   * Checks everything the script will check (a job that exits 2 at every run would be no
   * backstop at all), then loads it in place of any earlier one of that grant, read back.
   */
  async arm(s: RestoreSpec): Promise<void> {
    const label = restoreLabel(s.grantId);
    if (!s.membership && !s.sudo) throw new AccountError('COMMAND_FAILED', `restore job of ${s.grantId}: nothing to take away (neither the membership nor a sudo drop-in)`);
    if (s.sudo) sudoDropIn(s.grantId); // the script's file name is this one's (a grant id unfit for it: refused)
    if (!RESTORE_NAME.test(s.name)) throw new AccountError('INVALID_NAME', `${JSON.stringify(s.name)}: not a name the macOS restore job takes`);
    if (s.group !== 'Administrators') throw new AccountError('UNSUPPORTED_GROUP', `macOS restores only Administrators (admin), not ${s.group}`);
    const rec = await this.dir.readUser(s.name);
    if (!rec) throw new AccountError('NOT_FOUND', `${s.name} does not exist`);
    const uid = actionableUid(s.name, rec.uid);
    const job = restoreJob(s, uid); // before anything is loaded: throws for an invalid end
    await loadDaemon(this.dir, label, restorePlistPath(s.grantId), job);
  }

  async disarm(grantId: string): Promise<void> {
    await removeDaemon(this.dir, restoreLabel(grantId), restorePlistPath(grantId));
  }

  /** Every restore plist in LAUNCH_DAEMONS, its job unloaded too; the backstops' are not ours to touch here. */
  async drop(): Promise<void> {
    const grants = (await listDaemons(this.dir, OUR_PLIST)).filter((g) => RESTORE_GRANT_ID.test(g));
    for (const grantId of grants) await this.disarm(grantId);
  }
}
