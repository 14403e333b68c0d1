/**
 * Processes by uid, read from /proc and signalled from here: what pgrep and pkill would do, without
 * starting four programs for every removal. A process counts when its real or its effective uid is
 * the account's (setuid programs have them differ).
 */
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Pids whose real or effective uid is `uid`; not zombies (dead already, waiting for their parent).
 * Read synchronously: /proc's files are made on the spot, and a thousand of them read in a loop
 * take about 15 ms, ten times faster than through the thread pool.
 */
export function pidsOf(uid: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  return entries
    .filter((e) => {
      let status: string;
      try {
        status = readFileSync(`/proc/${e}/status`, 'utf8');
      } catch {
        return false; // gone meanwhile
      }
      const ids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
      return ids && !/^State:\s+[ZX]/m.test(status) && (ids[1] === uid || ids[2] === uid);
    })
    .map(Number);
}

/**
 * SIGKILLs every process of `uid`, again while new ones appear (a process may fork while the
 * others die), at most `rounds` times. Returns how many were killed and how many are left.
 */
export async function killAll(uid: string, rounds = 10): Promise<{ killed: number; left: number[] }> {
  const killed = new Set<number>();
  let left: number[] = [];
  for (let i = 0; i < rounds; i++) {
    left = pidsOf(uid);
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
  left = pidsOf(uid);
  return { killed: killed.size, left };
}
