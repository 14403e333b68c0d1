/**
 * What the macOS restore job runs (macos-restore.ts): `/bin/sh -c RESTORE_SCRIPT jit GRANT NAME
 * UID GROUP END LOGOFF MEMBERSHIP SUDO`. Like BACKSTOP_SCRIPT it is a constant (the same text for
 * every account, built once from constants) and POSIX sh; the values reach it only as positional
 * parameters, never as script text. The uid and end checks, the clock and the dscl reading are
 * the backstop's own SH_* pieces (macos-backstop-script.ts), the drop-in's folder, name prefix
 * and marker are macos-sudo.ts's constants: not copies.
 *
 * launchd starts it at load (bootstrap, boot) and at the start of every minute. Each run:
 *   1. checks its arguments, else exit 2 without running anything: GRANT as RESTORE_GRANT_ID,
 *      NAME as RESTORE_NAME (stricter than ELEVATION_ACCOUNT.macos: lowercase, no leading '.',
 *      '-' or '_'), UID 501 or more, GROUP exactly `admin`, END epoch seconds, LOGOFF,
 *      MEMBERSHIP and SUDO each 0 or 1, MEMBERSHIP and SUDO not both 0 (nothing to take away);
 *   2. the backstop's clock: exits before the last BACKSTOP_WINDOW_SECONDS, waits inside them;
 *   3. its plist gone: it acted already (or was disarmed) and only its bootout failed, so it
 *      boots itself out again and does nothing else;
 *   4. SUDO=1: the grant's drop-in, SUDOERS_D/DROP_IN_PREFIX + GRANT with each '.' as '_' (the
 *      name sudoDropIn gives it), if it is a regular file whose first line starts with
 *      `MARKER_LINE GRANT ` (what grantMacSudo writes), is removed with rm -f, read back with
 *      stat. Whatever the directory says of NAME now: the drop-in gives root to whoever holds
 *      that name, and the marker says it is ours, of this grant. Anything else at that path
 *      (another grant's marker, none, a link, a folder) is left alone. Still there, or a regular
 *      file it cannot read: the run goes on with steps 5 and 6, then exits before 7 and 8 (no
 *      logoff, no leaving), and the next minute tries again;
 *   5. the record: UniqueID exactly UID, else (another account of that name, or none: dscl's
 *      eDSRecordNotFound) nothing of the account is left to restore: steps 6 and 7 skipped,
 *      straight to 8 (unless the drop-in is still there). A read that fails otherwise
 *      (opendirectoryd down) changes nothing more: the next minute tries again;
 *   6. MEMBERSHIP=1 (0: the account was in GROUP before the grant, and stays): NAME out of
 *      GROUP's GroupMembership with dseditgroup -d, read back. While it is still listed (a failed
 *      write, an unreadable group) it exits and the next minute tries again;
 *   7. LOGOFF=1: launchctl bootout gui/UID and user/UID, pkill -KILL -U and -u UID;
 *   8. rm -f its plist, then `launchctl bootout system/LABEL` as the very last step, which ends
 *      this script too (launchd kills the job ⚠️).
 *
 * Why it acts ONCE, unlike the backstop: the account is a person's own. If the agent was removed
 * by hand and an administrator later makes the person an admin on purpose, a job that took them
 * out every minute forever would undo it.
 *
 * Why only the name in GroupMembership (step 6), not dseditgroup -o checkmember: that is the
 * membership the elevation added (dseditgroup -a); a membership through a nested group or the
 * primary group was never ours, and retrying to remove it would keep the job alive forever.
 * Likewise only a regular file with our marker at the drop-in's path (step 4): anything else was
 * not written by grantMacSudo, and retrying on it would keep the job alive forever.
 *
 * What it does not do, which the agent's endSessions does: end the root shells opened with sudo
 * or su from the person's sessions (they run as root, found through the process tree with ps).
 * With LOGOFF=1 they lose their parent session only; removing the drop-in does not end them
 * either. The job is the backstop of a dead agent, not its replacement.
 *
 * "$R" (the optional 9th parameter, after SUDO) prefixes every tool, '' on a Mac, a folder of
 * stubs in the tests (see macos-backstop-script.ts for why an argument and not the environment).
 *
 * ⚠️ Not run on a real Mac: that `launchctl bootout system/LABEL` run by the job itself ends it
 * (and does not hang waiting for it); that dscl prints eDSRecordNotFound/-14136 for a missing
 * record; that BSD stat -f %HT says `Regular File` for a drop-in; the rest as listed in
 * macos-backstop.ts and macos-sudo.ts.
 */
import { LAUNCH_DAEMONS } from './macos-backstop.ts';
import { SH_CHECK_UID_END, SH_CLOCK, SH_DIGIT as DIGIT, SH_LOWER as LOWER, SH_READ, SH_UPPER as UPPER, shBin as bin } from './macos-backstop-script.ts';
import { DROP_IN_PREFIX, MARKER_LINE, SUDOERS_D } from './macos-sudo.ts';

/** The restore job's launchd label is this and the grant id; its plist is LAUNCH_DAEMONS/LABEL.plist. */
export const RESTORE_LABEL_PREFIX = 'com.jit-access.restore.';

/** An account name as the restore script takes it (its sh check says the same). */
export const RESTORE_NAME = /^[a-z0-9][a-z0-9._-]{0,31}$/;

export const RESTORE_SCRIPT = `# jit-access restore: at an elevation's end, agent or not, once: removes the grant's sudoers
# drop-in, takes the account out of a group.
# Parameters: GRANT NAME UID GROUP END (epoch seconds) LOGOFF MEMBERSHIP SUDO (0|1 each)
# [tool prefix, tests only].
[ $# -eq 8 ] || [ $# -eq 9 ] || exit 2
grant=$1 name=$2 uid=$3 group=$4 end=$5 logoff=$6 membership=$7 sudo=$8 R=\${9-}
case $grant in '' | *[!${LOWER}${UPPER}${DIGIT}._-]*) exit 2 ;; esac
[ \${#grant} -le 64 ] || exit 2
case $name in [${LOWER}${DIGIT}]*) ;; *) exit 2 ;; esac
case $name in *[!${LOWER}${DIGIT}._-]*) exit 2 ;; esac
[ \${#name} -le 32 ] || exit 2
[ "$group" = admin ] || exit 2
case $logoff in 0 | 1) ;; *) exit 2 ;; esac
case $membership in 0 | 1) ;; *) exit 2 ;; esac
case $sudo in 0 | 1) ;; *) exit 2 ;; esac
[ "$membership$sudo" != 00 ] || exit 2
${SH_CHECK_UID_END}
label=${RESTORE_LABEL_PREFIX}$grant
plist=${LAUNCH_DAEMONS}/$label.plist
# The grant's sudoers drop-in: each '.' of the grant id as '_' (sudo skips a name with a '.').
f=$grant dropin=
while :; do
  case $f in
    *.*) dropin=$dropin\${f%%.*}_ f=\${f#*.} ;;
    *) dropin=${SUDOERS_D}/${DROP_IN_PREFIX}$dropin$f; break ;;
  esac
done
marker="${MARKER_LINE}$grant "

${SH_CLOCK}
${SH_READ}
# Once: the plist first (not loaded again at boot), then the job itself, which ends this script.
leave() {
  ${bin('rm')} -f "$plist" >/dev/null 2>&1
  ${bin('launchctl')} bootout "system/$label" >/dev/null 2>&1
  exit 0
}

# Acted already, and only the bootout failed? Then leave again, and nothing else.
${bin('stat')} -f %u:%HT "$plist" >/dev/null 2>&1 || leave

# Our drop-in of this grant, whoever has the name now: a regular file, our marker for this grant
# on its first line. Removed, read back; still there (or unreadable): the next minute tries again.
again=0
if [ "$sudo" = 1 ] && st=$(${bin('stat')} -f %u:%HT "$dropin" 2>/dev/null); then
  case $st in
    *':Regular File')
      if text=$(${bin('cat')} "$dropin" 2>/dev/null); then
        case $text in
          "$marker"*)
            ${bin('rm')} -f "$dropin" >/dev/null 2>&1
            ${bin('stat')} -f %u:%HT "$dropin" >/dev/null 2>&1 && again=1
            ;;
        esac
      else
        again=1
      fi
      ;;
  esac
fi

# Still the account this job was armed for? Another one, or none: nothing of it to restore.
if out=$(${bin('dscl')} -plist . -read "/Users/$name" UniqueID 2>&1); then
  [ "$(values "$out")" = "$uid" ] || { [ "$again" = 0 ] || exit 0; leave; }
else
  case $out in *eDSRecordNotFound* | *-14136*) [ "$again" = 0 ] || exit 0; leave ;; esac
  exit 0
fi

# Out of the group by name, read back; still listed (or unreadable): the next minute tries again.
listed() {
  out=$(read1 "/Groups/$group" GroupMembership) || return 0
  case "$nl$(values "$out")$nl" in *"$nl$name$nl"*) return 0 ;; esac
  return 1
}
if [ "$membership" = 1 ] && listed; then
  ${bin('dseditgroup')} -o edit -q -d "$name" -t user "$group" >/dev/null 2>&1
  listed && exit 0
fi
[ "$again" = 0 ] || exit 0

if [ "$logoff" = 1 ]; then
  ${bin('launchctl')} bootout "gui/$uid" >/dev/null 2>&1
  ${bin('launchctl')} bootout "user/$uid" >/dev/null 2>&1
  ${bin('pkill')} -KILL -U "$uid" >/dev/null 2>&1
  ${bin('pkill')} -KILL -u "$uid" >/dev/null 2>&1
fi
leave
`;
