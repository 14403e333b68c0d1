/**
 * The simulated Mac's launchd (the system domain's jobs, and the gui/ and user/ domains of
 * logged-in accounts), pgrep and pkill, the tools that put a job's plist in place and read it back (install,
 * cat, ls), and the clock the backstop script reads (date, sleep): functions over the FakeMac
 * model. ⚠️ marks behaviour taken from man pages or third-party reports, not seen on a Mac.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FakeMac, Out } from './fakeMac.ts';
import { isObj, readPlistXml } from './fakeMacTools.ts';

/** A job bootstrapped into the system domain. */
export interface LaunchdJob {
  label: string;
  /** The plist it was loaded from. */
  path: string;
  /** The whole plist as launchd parsed it. */
  plist: Record<string, unknown>;
  programArguments: string[];
  /** How many times launchd would have started it so far (RunAtLoad counts one at load). */
  starts: number;
}

/** The folder launchd loads system daemons from at boot. */
export const LAUNCH_DAEMONS = '/Library/LaunchDaemons';

/** Keys the model understands; any other is recorded as unmodelled (a test failure). */
const KNOWN_KEYS = new Set(['Label', 'ProgramArguments', 'RunAtLoad', 'StartCalendarInterval', 'StartInterval', 'ProcessType']);
/** launchd.plist(5): the StartCalendarInterval keys and their ranges (Weekday 0 and 7 are Sunday). */
const CALENDAR: Record<string, [number, number]> = { Minute: [0, 59], Hour: [0, 23], Day: [1, 31], Weekday: [0, 7], Month: [1, 12] };

// ⚠️ Messages and exit codes as reported for launchctl 2 (macOS 10.10+): 5 "Input/output error"
// for a plist it will not load (also when the label is already loaded), 113 "Could not find
// specified service" for a label that is not loaded.
const IO_ERROR = (verb: string): Out => ({ code: 5, stderr: `${verb} failed: 5: Input/output error\n` });
const NO_SERVICE = (label: string): Out => ({ code: 113, stderr: `Could not find service "${label}" in domain for system\n` });

export function launchctl(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length === 2 && a[0] === 'bootout') {
    const session = /^(gui|user)\/(\d+)$/.exec(a[1]!);
    if (session) {
      // ⚠️ bootout of a domain nobody is in: "Boot-out failed: 3: No such process", exit 3.
      const hits = [...mac.procs.values()].filter((p) => p.alive && p.ruid === Number(session[2]) && p.domain === session[1]);
      for (const p of hits) p.alive = false;
      return hits.length ? { code: 0 } : { code: 3, stderr: 'Boot-out failed: 3: No such process\n' };
    }
    const label = systemLabel(a[1]!);
    if (label === null) return mac.unknown(file, a);
    if (mac.faults.notRoot) return { code: 1, stderr: 'Boot-out failed: 1: Operation not permitted\n' };
    if (!mac.launchd.delete(label)) return { code: 113, stderr: 'Boot-out failed: 113: Could not find specified service\n' };
    return { code: 0 };
  }
  if (a.length === 2 && a[0] === 'print') {
    const label = systemLabel(a[1]!);
    if (label === null) return mac.unknown(file, a);
    const job = mac.launchd.get(label);
    if (!job || mac.faults.launchdForgets) return NO_SERVICE(label);
    // ⚠️ Only the first lines of the real output, which is much longer.
    return { code: 0, stdout: `system/${label} = {\n\tactive count = 0\n\tpath = ${job.path}\n\tstate = not running\n}\n` };
  }
  if (a.length === 3 && a[0] === 'bootstrap' && a[1] === 'system') return bootstrap(mac, a[2]!);
  return mac.unknown(file, a);
}

/** `system/LABEL` → LABEL; null for any other target. */
function systemLabel(target: string): string | null {
  const m = /^system\/([A-Za-z0-9._-]+)$/.exec(target);
  return m ? m[1]! : null;
}

/**
 * `launchctl bootstrap system PATH`: what launchd checks before it takes a daemon — the file is
 * in /Library/LaunchDaemons, owned by root:wheel and writable by nobody else ⚠️ (launchd skips a
 * plist of "dubious ownership"), a well-formed plist whose Label is the file's name, with
 * ProgramArguments, and keys of the right types. The model also holds us to our own rule that
 * the label is named after the file (what launchctl's docs ask).
 */
function bootstrap(mac: FakeMac, p: string): Out {
  if (mac.faults.notRoot) return { code: 1, stderr: 'Bootstrap failed: 1: Operation not permitted\n' };
  const entry = mac.fs.get(p);
  if (!entry || entry.content === undefined) return { code: 2, stderr: 'Bootstrap failed: 2: No such file or directory\n' };
  if (path.dirname(p) !== LAUNCH_DAEMONS || !p.endsWith('.plist')) return IO_ERROR('Bootstrap');
  if (entry.uid !== 0 || entry.gid !== 0 || entry.mode === undefined || (entry.mode & 0o022) !== 0) return IO_ERROR('Bootstrap');
  let plist: unknown;
  try {
    plist = readPlistXml(entry.content);
  } catch {
    return IO_ERROR('Bootstrap');
  }
  if (!isObj(plist) || typeof plist.Label !== 'string' || `${plist.Label}.plist` !== path.basename(p)) return IO_ERROR('Bootstrap');
  const args = plist.ProgramArguments;
  if (!Array.isArray(args) || !args.length || !args.every((x) => typeof x === 'string') || !String(args[0]).startsWith('/')) return IO_ERROR('Bootstrap');
  for (const k of Object.keys(plist)) if (!KNOWN_KEYS.has(k)) mac.unmodelled.push(`launchd key ${k}`);
  if ('RunAtLoad' in plist && typeof plist.RunAtLoad !== 'boolean') return IO_ERROR('Bootstrap');
  if ('StartInterval' in plist && !(Number.isInteger(plist.StartInterval) && (plist.StartInterval as number) > 0)) return IO_ERROR('Bootstrap');
  if ('ProcessType' in plist && !['Background', 'Standard', 'Adaptive', 'Interactive'].includes(plist.ProcessType as string)) return IO_ERROR('Bootstrap');
  if ('StartCalendarInterval' in plist && !calendarOk(plist.StartCalendarInterval)) return IO_ERROR('Bootstrap');
  if (mac.launchd.has(plist.Label) || mac.faults.bootstrapFails) return IO_ERROR('Bootstrap');
  mac.launchd.set(plist.Label, { label: plist.Label, path: p, plist, programArguments: args as string[], starts: plist.RunAtLoad === true ? 1 : 0 });
  return { code: 0 };
}

/** A dict, or an array of dicts, of integer calendar fields in range; a missing field is a wildcard. */
function calendarOk(v: unknown): boolean {
  const dicts = Array.isArray(v) ? v : [v];
  return dicts.length > 0 && dicts.every((d) => isObj(d) && Object.entries(d).every(([k, n]) => k in CALENDAR && Number.isInteger(n) && (n as number) >= CALENDAR[k]![0] && (n as number) <= CALENDAR[k]![1]));
}

/**
 * The minutes (0–59) at which a job's StartCalendarInterval fires, as launchd.plist(5) reads it:
 * each dict is one crontab-like line, a missing field a wildcard. Only Minute-only entries are
 * expanded (others would fire at some minutes of some hours): enough for "every minute".
 */
export function firingMinutes(job: LaunchdJob): number[] {
  const v = job.plist.StartCalendarInterval;
  const dicts = (Array.isArray(v) ? v : v === undefined ? [] : [v]) as Record<string, number>[];
  const minutes = new Set<number>();
  for (const d of dicts) {
    if (Object.keys(d).some((k) => k !== 'Minute')) continue;
    if (d.Minute === undefined) for (let m = 0; m < 60; m++) minutes.add(m);
    else minutes.add(d.Minute);
  }
  return [...minutes].sort((x, y) => x - y);
}

// ------------------------------------------------------------------ processes

const [PGREP, PKILL] = ['/usr/bin/pgrep', '/usr/bin/pkill'];

/** BSD pgrep/pkill by uid: 0 matched, 1 none, 2 usage. -U real uid, -u effective uid. */
export function signal(mac: FakeMac, file: string, a: string[]): Out {
  const args = file === PKILL ? (a[0] === '-KILL' ? a.slice(1) : null) : a;
  if (!args || args.length !== 2 || (args[0] !== '-U' && args[0] !== '-u')) return mac.unknown(file, a);
  if (!/^\d+$/.test(args[1]!)) return { code: 2, stderr: `${path.basename(file)}: invalid user name\n` };
  const uid = Number(args[1]);
  const hits = [...mac.procs].filter(([, p]) => p.alive && (args[0] === '-U' ? p.ruid : p.euid) === uid);
  if (file === PKILL) for (const [, p] of hits) p.alive = false;
  return hits.length ? { code: 0, stdout: file === PGREP ? hits.map(([pid]) => `${pid}\n`).join('') : '' } : { code: 1 };
}

// ------------------------------------------------------------------ file and clock tools

/** `ps -axo pid=,ppid=,ruid=,uid=` ⚠️ (BSD ps: the keywords, `=` for no header), live processes only. */
function ps(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 2 || a[0] !== '-axo' || a[1] !== 'pid=,ppid=,ruid=,uid=') return mac.unknown(file, a);
  return { code: 0, stdout: [...mac.procs].filter(([, p]) => p.alive).map(([pid, p]) => `${String(pid).padStart(5)} ${String(p.ppid).padStart(5)} ${String(p.ruid).padStart(5)} ${String(p.euid).padStart(5)}\n`).join('') };
}

/** `kill -9 PID…`: 0 when every one was signalled, 1 when one was not there. */
function kill(mac: FakeMac, file: string, a: string[]): Out {
  if (a[0] !== '-9' || a.length < 2 || !a.slice(1).every((x) => /^\d+$/.test(x))) return mac.unknown(file, a);
  let missing = false;
  for (const pid of a.slice(1).map(Number)) {
    const p = mac.procs.get(pid);
    if (p?.alive) p.alive = false;
    else missing = true;
  }
  return missing ? { code: 1, stderr: 'kill: No such process\n' } : { code: 0 };
}

/** The tools by path: install, cat, ls, date, sleep, ps, kill. */
export const LAUNCHD_TOOLS: Record<string, (mac: FakeMac, file: string, a: string[]) => Out> = {
  '/bin/ps': ps,
  '/bin/kill': kill,
  '/usr/bin/install': install,
  '/bin/cat': cat,
  '/bin/ls': ls,
  '/bin/date': date,
  '/bin/sleep': sleep,
};

/**
 * BSD install(1) `-S -m MODE -o OWNER -g GROUP SRC DEST`: -S "safe copy", a temporary file
 * renamed over the target, so launchd never reads half a plist ⚠️. SRC is a real file (the agent
 * writes it in a private folder, as for pwpolicy), DEST goes into the model.
 */
function install(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 9 || a[0] !== '-S' || a[1] !== '-m' || a[3] !== '-o' || a[5] !== '-g' || !/^[0-7]{3,4}$/.test(a[2]!)) return mac.unknown(file, a);
  const ids: Record<string, number> = { root: 0, wheel: 0 };
  const [uid, gid, src, dest] = [ids[a[4]!], ids[a[6]!], a[7]!, a[8]!];
  if (uid === undefined || gid === undefined) return mac.unknown(file, a);
  if (mac.faults.notRoot) return { code: 71, stderr: `install: ${dest}: Permission denied\n` };
  if (!mac.fs.has(path.dirname(dest))) return { code: 71, stderr: `install: ${dest}: No such file or directory\n` };
  let content: string;
  try {
    content = readFileSync(src, 'utf8');
  } catch {
    return { code: 71, stderr: `install: ${src}: No such file or directory\n` };
  }
  mac.fs.set(dest, { uid, gid, mode: parseInt(a[2]!, 8), type: 'Regular File', content });
  return { code: 0 };
}

function cat(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 1 || !a[0]!.startsWith('/')) return mac.unknown(file, a);
  const e = mac.fs.get(a[0]!);
  if (!e) return { code: 1, stderr: `cat: ${a[0]}: No such file or directory\n` };
  if (e.content === undefined) return mac.unknown(file, a); // a file whose content the model does not know
  return { code: 0, stdout: mac.faults.plistReadsBackChanged ? e.content.replace('<true/>', '<false/>') : e.content };
}

/** `ls DIR`: the names in it, one a line (not a terminal: no columns), sorted. */
function ls(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 1 || !a[0]!.startsWith('/')) return mac.unknown(file, a);
  const dir = a[0]!;
  if (mac.fs.get(dir)?.type !== 'Directory') return { code: 1, stderr: `ls: ${dir}: No such file or directory\n` };
  const names = [...mac.fs.keys()].filter((p) => path.dirname(p) === dir && p !== dir).map((p) => path.basename(p)).sort();
  return { code: 0, stdout: names.map((n) => `${n}\n`).join('') };
}

/** `date +%s`: the model's clock, whole seconds since the epoch (BSD date ⚠️ supports %s). */
function date(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 1 || a[0] !== '+%s') return mac.unknown(file, a);
  return { code: 0, stdout: `${Math.floor(mac.now / 1000)}\n` };
}

/** `sleep N`: the model's clock moves on N seconds, at once. */
function sleep(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 1 || !/^\d+$/.test(a[0]!)) return mac.unknown(file, a);
  mac.now += Number(a[0]) * 1000;
  return { code: 0 };
}
