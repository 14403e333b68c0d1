/**
 * What the macOS backstop job runs: `/bin/sh -c BACKSTOP_SCRIPT jit NAME UID END`. The text is a
 * constant (the same for every account, built once from constants); the account's name, uid and
 * end (epoch seconds) reach it only as positional parameters, never as script text, so nothing in
 * them is ever interpreted. It is POSIX sh: macOS's /bin/sh is bash 3.2 in POSIX mode (or dash or
 * zsh if an admin switched /private/var/select/sh ⚠️), and the tests run it under dash and bash.
 *
 * launchd starts it at load (bootstrap, boot) and at the start of every minute (see
 * macos-backstop.ts). Each run:
 *   1. checks its arguments (a name as we make them, a uid of 501 or more, an epoch), else exit 2;
 *   2. reads the clock: more than BACKSTOP_WINDOW_SECONDS before the end it exits at once; inside
 *      that window it re-reads the clock every second until the end second has come. So a run
 *      started by the last minute's firing before the end is already waiting when it comes;
 *   3. checks the record is still the account it was armed for: UniqueID exactly UID, RealName
 *      exactly one `jit-access grant=<id>` tag, the name in jit-managed's GroupMembership (what
 *      MacBackend calls ours). Anything else, or a failed read, and it does nothing;
 *   4. makes it dead: pwpolicy -disableuser (and ;DisabledUser; through dscl if that changed
 *      nothing), out of admin, launchctl bootout gui/UID and user/UID, pkill -KILL -U and -u UID.
 *      Failures are ignored: the next minute's run tries again.
 * After the end every run repeats step 3–4 (idempotent) until the agent disarms the job: an
 * account the agent could not delete stays dead, and whatever its crontab starts is killed again.
 *
 * Tools by absolute path, each prefixed with "$R": the optional 4th parameter, '' on a Mac (the
 * agent never passes it); the tests pass a folder of stubs laid out like the Mac's. Why an
 * argument and not variables from the environment: every backstop then depends only on what its
 * own plist says, not on whatever environment launchd hands its jobs (`launchctl setenv` changes
 * it for every job in the domain).
 *
 * The argument checks of uid and end, the clock and the dscl reading are SH_* constants shared
 * with the elevation's restore job (macos-restore-script.ts).
 */
import { MARKER_GROUP, OWNERSHIP_TAG_PREFIX } from './backend.ts';
import { DISABLED_USER, LOCAL_NODE, MAC_BIN } from './macos-dir.ts';

/** How long before the end a run stays and waits for it: more than a minute, plus launchd's 10 s throttle. */
export const BACKSTOP_WINDOW_SECONDS = 120;

// Explicit character lists, not ranges: a range like [a-z] follows the locale's collation in bash.
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGIT = '0123456789';

/** A tool in script text: its absolute macOS path behind the "$R" prefix, quoted. */
const bin = (tool: keyof typeof MAC_BIN): string => `"$R${MAC_BIN[tool]}"`;

// The pieces the restore script (macos-restore-script.ts) shares with this one: one text for
// both, so a fix to the clock or the checks reaches both jobs. Each reads and sets only the
// variables its comment names.
export { bin as shBin, DIGIT as SH_DIGIT, LOWER as SH_LOWER, UPPER as SH_UPPER };

/** Checks $uid (a uid of 501 or more), $end (epoch seconds) and $R (the tool prefix), else exit 2. */
export const SH_CHECK_UID_END = `case $uid in '' | 0* | *[!${DIGIT}]*) exit 2 ;; esac
[ \${#uid} -le 10 ] && [ "$uid" -ge 501 ] && [ "$uid" -le 4294967295 ] || exit 2
case $end in '' | 0* | *[!${DIGIT}]*) exit 2 ;; esac
[ \${#end} -le 12 ] || exit 2
case $R in '' | /*) ;; *) exit 2 ;; esac
`;

/** The clock, on $end: exits 0 before the window, waits inside it, falls through from the end second on. */
export const SH_CLOCK = `# The clock: wait inside the last ${BACKSTOP_WINDOW_SECONDS} seconds, act from the end second on.
while :; do
  now=$(${bin('date')} +%s) || exit 1
  case $now in '' | *[!${DIGIT}]*) exit 1 ;; esac
  [ "$now" -ge "$end" ] && break
  [ "$now" -ge $((end - ${BACKSTOP_WINDOW_SECONDS})) ] || exit 0
  ${bin('sleep')} 1 || exit 1
done
`;

/** values (the <string>s of a dscl -plist read, one a line), read1 (such a read, stderr dropped), $nl. */
export const SH_READ = `# The <string> values of a one-key \`dscl -plist . -read\`, one a line.
values() {
  printf '%s\\n' "$1" | while IFS= read -r l; do
    case $l in *'<string>'*'</string>'*) l=\${l#*"<string>"}; printf '%s\\n' "\${l%"</string>"*}" ;; esac
  done
}
read1() { ${bin('dscl')} -plist . -read "$1" "$2" 2>/dev/null; }
nl='
'
`;

export const BACKSTOP_SCRIPT = `# jit-access backstop: makes a temporary account dead at its grant's end, agent or not.
# Parameters: NAME UID END (epoch seconds) [tool prefix, tests only].
[ $# -eq 3 ] || [ $# -eq 4 ] || exit 2
name=$1 uid=$2 end=$3 R=\${4-}
case $name in [${LOWER}]*) ;; *) exit 2 ;; esac
case $name in *[!${LOWER}${DIGIT}_-]*) exit 2 ;; esac
[ \${#name} -le 20 ] || exit 2
${SH_CHECK_UID_END}
${SH_CLOCK}
${SH_READ}
# Still the account this job was armed for? Else hands off.
out=$(read1 "/Users/$name" UniqueID) || exit 0
[ "$(values "$out")" = "$uid" ] || exit 0
out=$(read1 "/Users/$name" RealName) || exit 0
tag=$(values "$out")
case $tag in '${OWNERSHIP_TAG_PREFIX}'?*) ;; *) exit 0 ;; esac
grant=\${tag#'${OWNERSHIP_TAG_PREFIX}'}
case $grant in *[!${LOWER}${UPPER}${DIGIT}._-]*) exit 0 ;; esac
[ \${#grant} -le 64 ] || exit 0
out=$(read1 /Groups/${MARKER_GROUP} GroupMembership) || exit 0
case "$nl$(values "$out")$nl" in *"$nl$name$nl"*) ;; *) exit 0 ;; esac

# Dead: no logon, no admin, no session, no process.
${bin('pwpolicy')} -u "$name" -n ${LOCAL_NODE} -disableuser >/dev/null 2>&1
out=$(read1 "/Users/$name" AuthenticationAuthority)
case "$nl$(values "$out")$nl" in
  *"$nl${DISABLED_USER}$nl"*) ;;
  *) ${bin('dscl')} . -append "/Users/$name" AuthenticationAuthority '${DISABLED_USER}' >/dev/null 2>&1 ;;
esac
${bin('dseditgroup')} -o edit -q -d "$name" -t user admin >/dev/null 2>&1
${bin('launchctl')} bootout "gui/$uid" >/dev/null 2>&1
${bin('launchctl')} bootout "user/$uid" >/dev/null 2>&1
${bin('pkill')} -KILL -U "$uid" >/dev/null 2>&1
${bin('pkill')} -KILL -u "$uid" >/dev/null 2>&1
exit 0
`;
