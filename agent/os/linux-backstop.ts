/**
 * The OS-level backstop on Linux: a transient systemd timer, registered at enable, that makes the
 * account dead at its end even if the agent is not running then (crashed, hung, killed). It runs
 * a constant shell script; the account's name, uid and (tests only) sandbox root reach it only as
 * positional arguments, never inside the script text. The script acts only on an account that
 * still has that name, that uid and our ownership marker, and does what the removal's first two
 * steps do: lock and expire it, then end its sessions and processes. The agent, when it runs,
 * removes the timer as it ends the grant itself.
 *
 * Transient (systemd-run, over D-Bus): nothing is written under /etc and systemd needs no reload,
 * so the hardened agent service needs no extra writable path. A transient timer does not survive a
 * reboot; after one, the agent removes every expired account first thing at start, and the
 * account expiry set at enable (the day after the end) still stands.
 */
import { existsSync } from 'node:fs';
import { MARKER_GROUP, OWNERSHIP_TAG_PREFIX } from './backend.ts';

/** The unit's name for an account (names are checked by assertValidName before). */
export const backstopUnit = (name: string): string => `jit-backstop-${name}`;

/**
 * $1 name, $2 uid, $3 sandbox root ('' for the real system). Reads passwd and group itself (no
 * NSS): an account of a directory service is never ours anyway.
 */
export const BACKSTOP_SCRIPT = [
  `awk -F: -v n="$1" -v u="$2" '$1 == n && $3 == u && index($5, "${OWNERSHIP_TAG_PREFIX}") == 1 { ok = 1 } END { exit !ok }' "$3/etc/passwd" || exit 0`,
  `awk -F: -v n="$1" '$1 == "${MARKER_GROUP}" { k = split($4, m, ","); for (i = 1; i <= k; i++) if (m[i] == n) ok = 1 } END { exit !ok }' "$3/etc/group" || exit 0`,
  'usermod ${3:+--prefix "$3"} -L -e 1 -- "$1"',
  '[ -n "$3" ] || { loginctl disable-linger "$2"; loginctl terminate-user "$2"; } 2>/dev/null',
  'pkill -KILL -U "$2"; pkill -KILL -u "$2"',
  'exit 0',
].join('\n');

/** systemd's calendar form of an instant, in UTC, to the second. */
export function onCalendar(at: Date): string {
  return `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** What the timer is: the same description renders the unit files (checked) and the systemd-run argv (used). */
export function backstopSpec(name: string, uid: string, at: Date) {
  return {
    unit: backstopUnit(name),
    description: `jit-access backstop: disable ${name} at the end of its grant`,
    timer: { OnCalendar: onCalendar(at), AccuracySec: '1s', RemainAfterElapse: 'no' },
    service: { Type: 'oneshot' },
    command: ['/bin/sh', '-c', BACKSTOP_SCRIPT, 'jit-backstop', name, uid, ''],
  };
}
type Spec = ReturnType<typeof backstopSpec>;

/** `$` is systemd's variable sign in a command line: `$$` is a literal one (unit files and D-Bus alike). */
const systemdArg = (a: string) => a.replace(/\$/g, '$$$$');

export function systemdRunArgv(s: Spec): string[] {
  return [
    `--unit=${s.unit}`, `--description=${s.description}`, '--collect', '--quiet',
    ...Object.entries(s.timer).map(([k, v]) => (k === 'OnCalendar' ? `--on-calendar=${v}` : `--timer-property=${k}=${v}`)),
    ...Object.entries(s.service).map(([k, v]) => `--property=${k}=${v}`),
    '--', ...s.command.map(systemdArg),
  ];
}

/** The same timer as unit files, for `systemd-analyze verify`. */
export function unitFiles(s: Spec): { timer: string; service: string } {
  const quote = (a: string) => `"${systemdArg(a).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
  return {
    timer: ['[Unit]', `Description=${s.description}`, '', '[Timer]', ...Object.entries(s.timer).map(([k, v]) => `${k}=${v}`), `Unit=${s.unit}.service`, ''].join('\n'),
    service: ['[Unit]', `Description=${s.description}`, '', '[Service]', ...Object.entries(s.service).map(([k, v]) => `${k}=${v}`), `ExecStart=${s.command.map(quote).join(' ')}`, ''].join('\n'),
  };
}

/** sd_booted(): systemd is this machine's init. */
export const systemdRuns = (): boolean => existsSync('/run/systemd/system');

/**
 * Where systemd is not init (containers, OpenRC, this project's sandboxes): a detached shell that
 * checks the wall clock every second (so a clock step is noticed) and runs the same script once
 * the end ($4, epoch seconds) has come. It lives in its own session, so it outlives the agent
 * process; a reboot ends it, as it ends a transient timer. Under systemd it would be killed with
 * the agent's cgroup, which is why systemd-run is used there.
 */
export const SLEEPER_SCRIPT = `while [ "$(date +%s)" -lt "$4" ]; do sleep 1; done\n${BACKSTOP_SCRIPT}`;

export function sleeperArgv(name: string, uid: string, root: string, at: Date): string[] {
  return ['-c', SLEEPER_SCRIPT, 'jit-backstop', name, uid, root, String(Math.ceil(at.getTime() / 1000))];
}
