/**
 * Processes by uid, read from /proc and signalled from here: what pgrep and pkill would do, without
 * starting four programs for every removal. A process counts when its real or its effective uid is
 * the account's (setuid programs have them differ).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** One process as /proc (or ps) tells it. */
export interface Proc {
  pid: number;
  ppid: number;
  ruid: string;
  euid: string;
  /** The uid its login session was opened for (pam_loginuid); 4294967295 when unset. */
  loginuid: string;
}

/**
 * Every live process (not zombies: dead already, waiting for their parent). Read synchronously:
 * /proc's files are made on the spot, and a thousand of them read in a loop take about 15 ms, ten
 * times faster than through the thread pool.
 */
function processes(withLoginuid: boolean): Proc[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  const out: Proc[] = [];
  for (const e of entries) {
    try {
      const status = readFileSync(`/proc/${e}/status`, 'utf8');
      const ids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
      if (!ids || /^State:\s+[ZX]/m.test(status)) continue;
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      let loginuid = UNSET;
      // Only the elevated-process search needs it: a second file per process otherwise.
      if (withLoginuid) {
        try {
          loginuid = readFileSync(`/proc/${e}/loginuid`, 'utf8').trim();
        } catch {
          // no audit support: ancestry alone decides below
        }
      }
      out.push({ pid: Number(e), ppid, ruid: ids[1]!, euid: ids[2]!, loginuid });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
/** loginuid when no login session set it (and what ps-based callers give). */
export const UNSET = '4294967295';

/** Pids whose real or effective uid is `uid`. */
export function pidsOf(uid: string): number[] {
  return processes(false).filter((p) => p.ruid === uid || p.euid === uid).map((p) => p.pid);
}

/**
 * Processes that run with another identity than `uid` but were started from its sessions: a root
 * shell opened with sudo or su keeps running after the account leaves the group. Found by an
 * ancestor whose real uid is `uid` (sudo and su keep the caller's real uid), or by the login uid
 * the session was opened for (pam_loginuid, kept across sudo, su and a daemon's double fork) when
 * the process is not itself above the account's processes (sshd's privileged half of a session
 * is: ending it would end the session).
 */
export function elevatedPidsOf(uid: string): number[] {
  return elevatedAmong(processes(true), uid, process.pid);
}

/** The selection of `elevatedPidsOf` on a process list (also what the macOS backend reads from ps). */
export function elevatedAmong(all: Proc[], uid: string, self: number): number[] {
  const byPid = new Map(all.map((p) => [p.pid, p]));
  const ancestors = (p: Proc): Proc[] => {
    const up: Proc[] = [];
    for (let q = byPid.get(p.ppid); q && up.length < 64; q = byPid.get(q.ppid)) up.push(q);
    return up;
  };
  const own = all.filter((p) => p.ruid === uid || p.euid === uid);
  const aboveOwn = new Set(own.flatMap((p) => ancestors(p).map((q) => q.pid)));
  return all
    .filter((p) => p.ruid !== uid && p.euid !== uid && p.pid !== self)
    .filter((p) => ancestors(p).some((q) => q.ruid === uid) || (p.loginuid === uid && !aboveOwn.has(p.pid)))
    .map((p) => p.pid);
}

/**
 * SIGKILLs every process of `uid`, again while new ones appear (a process may fork while the
 * others die), at most `rounds` times. Returns how many were killed and how many are left.
 */
export async function killAll(uid: string, rounds = 10, find: (uid: string) => number[] = pidsOf): Promise<{ killed: number; left: number[] }> {
  const killed = new Set<number>();
  let left: number[] = [];
  for (let i = 0; i < rounds; i++) {
    left = find(uid);
    if (!left.length) return { killed: killed.size, left };
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // gone meanwhile
      }
    }
    await new Promise((r) => setTimeout(r, 10 * (i + 1)));
  }
  left = find(uid);
  return { killed: killed.size, left };
}
