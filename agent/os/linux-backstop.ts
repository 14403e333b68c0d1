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
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MARKER_GROUP, OWNERSHIP_TAG_PREFIX } from './backend.ts';

/** The unit's name for an account (names are checked by assertValidName before). */
export const backstopUnit = (name: string): string => `jit-backstop-${name}`;

/**
 * $1 name, $2 uid, $3 sandbox root ('' for the real system). Reads passwd and group itself (no
 * NSS): an account of a directory service is never ours anyway.
 */
export const BACKSTOP_SCRIPT = [
  'PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH',
  `awk -F: -v n="$1" -v u="$2" '$1 == n && $3 == u && index($5, "${OWNERSHIP_TAG_PREFIX}") == 1 { ok = 1 } END { exit !ok }' "$3/etc/passwd" || exit 0`,
  `awk -F: -v n="$1" '$1 == "${MARKER_GROUP}" { k = split($4, m, ","); for (i = 1; i <= k; i++) if (m[i] == n) ok = 1 } END { exit !ok }' "$3/etc/group" || exit 0`,
  'usermod ${3:+--prefix "$3"} -L -e 1 -- "$1"',
  '[ -n "$3" ] || { loginctl disable-linger "$2"; loginctl terminate-user "$2"; } 2>/dev/null',
  'pkill -KILL -U "$2"; pkill -KILL -u "$2"',
  'exit 0',
].join('\n');

/** systemd's calendar form of an instant, in UTC, rounded up to the second: never early. */
export function onCalendar(at: Date): string {
  return `${new Date(Math.ceil(at.getTime() / 1000) * 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** The only folders the agent's tools are taken from on a real system (never an inherited PATH). */
export const SAFE_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/** What the timer is: the same description renders the unit files (checked) and the systemd-run argv (used). */
export function backstopSpec(name: string, uid: string, at: Date) {
  return {
    unit: backstopUnit(name),
    // The end is in the description, so an armed timer can be told apart from one for another end.
    description: `jit-access backstop: disable ${name} at ${onCalendar(at)}`,
    timer: { OnCalendar: onCalendar(at), AccuracySec: '1s', RemainAfterElapse: 'no' },
    service: { Type: 'oneshot' },
    command: ['/bin/sh', '-c', BACKSTOP_SCRIPT, 'jit-backstop', name, uid, ''],
  };
}
export type BackstopSpec = ReturnType<typeof backstopSpec>;

/** `$` is systemd's variable sign in a command line: `$$` is a literal one (unit files and D-Bus alike). */
export const systemdArg = (a: string) => a.replace(/\$/g, '$$$$');

export function systemdRunArgv(s: BackstopSpec): string[] {
  return [
    `--unit=${s.unit}`, `--description=${s.description}`, '--collect', '--quiet',
    ...Object.entries(s.timer).map(([k, v]) => (k === 'OnCalendar' ? `--on-calendar=${v}` : `--timer-property=${k}=${v}`)),
    ...Object.entries(s.service).map(([k, v]) => `--property=${k}=${v}`),
    '--', ...s.command.map(systemdArg),
  ];
}

/** sd_booted(): systemd is this machine's init. */
export const systemdRuns = (): boolean => existsSync('/run/systemd/system');

/**
 * Where systemd is not init (containers, OpenRC, this project's sandboxes): a detached shell that
 * checks the wall clock every second (so a clock step is noticed) and runs the same script once
 * the end ($4, epoch milliseconds) has come. It lives in its own session, so it outlives the agent
 * process; a reboot ends it, as it ends a transient timer. Under systemd it would be killed with
 * the agent's cgroup, which is why systemd-run is used there.
 * Milliseconds: whole seconds made it up to 1 s late (chaos seed 4206067 saw an account still
 * usable 2,030 ms after its end, the agent restarting at that moment). A `date` without %N
 * (busybox) gives whole seconds times 1000: never early, only coarser.
 */
export const SLEEPER_SCRIPT = [
  'ms() { t=$(date +%s%3N); case $t in *[!0-9]*) t=$(( $(date +%s) * 1000 ));; esac; echo "$t"; }',
  'while now=$(ms); [ "$now" -lt "$4" ]; do',
  // Every second until the last two, then every 0.1 s (a wall clock that steps is seen within 1 s).
  '  if [ $(( $4 - now )) -gt 2000 ]; then sleep 1; else sleep 0.1; fi',
  'done',
  BACKSTOP_SCRIPT,
].join('\n');

export function sleeperArgv(name: string, uid: string, root: string, at: Date): string[] {
  return ['-c', SLEEPER_SCRIPT, 'jit-backstop', name, uid, root, String(at.getTime())];
}

/** What arming needs from the backend: its sandbox root, a command runner and where pid files go. */
export interface BackstopHost {
  root: string | undefined;
  dir: string;
  /** Runs a system tool (the backend's runner, with its PATH), failing with an AccountError. */
  cmd(file: string, argv: string[], ok?: number[]): Promise<{ stdout: string }>;
}

/**
 * Arms the timer for `name` (uid `uid`) at `at`. One already armed for that end is left as it is:
 * at every agent start the timers are armed again, and replacing a working one would risk losing
 * it to a failure in between.
 */
export async function armLinuxBackstop(h: BackstopHost, name: string, uid: string, at: Date): Promise<'timer'> {
  const spec = backstopSpec(name, uid, at);
  if (!h.root && systemdRuns()) {
    const shown = await h.cmd('systemctl', ['show', '-p', 'Description,ActiveState', '--', `${spec.unit}.timer`], [0, 1]).catch(() => ({ stdout: '' }));
    if (shown.stdout.includes(`Description=${spec.description}`) && shown.stdout.includes('ActiveState=active')) return 'timer';
    await disarmLinuxBackstop(h, name);
    await h.cmd('systemd-run', systemdRunArgv(spec));
    return 'timer';
  }
  const argv = sleeperArgv(name, uid, h.root ?? '', at);
  if ((await sleeperOf(h, name))?.includes(argv.at(-1)!)) return 'timer';
  await disarmLinuxBackstop(h, name);
  // In a sandbox (tests) the agent's own environment goes along: its PATH and a faked clock.
  const env = h.root ? process.env : { PATH: SAFE_PATH };
  const child = spawn('/bin/sh', argv, { detached: true, stdio: 'ignore', env });
  child.unref();
  await mkdir(h.dir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(h.dir, `${name}.pid`), String(child.pid));
  return 'timer';
}

export async function disarmLinuxBackstop(h: BackstopHost, name: string): Promise<void> {
  if (!h.root && systemdRuns()) {
    // 5: no such unit (never armed, or it fired and was collected).
    await h.cmd('systemctl', ['stop', '--', `${backstopUnit(name)}.timer`], [0, 5]);
    return;
  }
  const pidFile = path.join(h.dir, `${name}.pid`);
  const pid = Number(await readFile(pidFile, 'utf8').catch(() => ''));
  if (await sleeperOf(h, name)) {
    try {
      process.kill(-pid, 'SIGKILL'); // its process group: the shell and its sleep
    } catch {
      // gone meanwhile
    }
  }
  await rm(pidFile, { force: true });
}

/** The argv of the running sleeper for `name`, or null (pids are reused: it must still be ours). */
async function sleeperOf(h: BackstopHost, name: string): Promise<string[] | null> {
  const pid = Number(await readFile(path.join(h.dir, `${name}.pid`), 'utf8').catch(() => ''));
  if (!(pid > 0)) return null;
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  return argv.includes('jit-backstop') && argv.includes(name) ? argv : null;
}
