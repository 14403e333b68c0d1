/**
 * Processes by uid, read from /proc and signalled from here: what pgrep and pkill would do, without
 * starting four programs for every removal. A process counts when its real or its effective uid is
 * the account's (setuid programs have them differ).
 */
import { readdir, readFile } from 'node:fs/promises';

/** Pids whose real or effective uid is `uid`; not zombies (dead already, waiting for their parent). */
export async function pidsOf(uid: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    const ids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    const zombie = /^State:\s+[ZX]/m.test(status);
    if (ids && !zombie && (ids[1] === uid || ids[2] === uid)) found.push(Number(entry));
  }
  return found;
}

/**
 * SIGKILLs every process of `uid`, again while new ones appear (a process may fork while the
 * others die), at most `rounds` times. Returns how many were killed and how many are left.
 */
export async function killAll(uid: string, rounds = 10): Promise<{ killed: number; left: number[] }> {
  const killed = new Set<number>();
  let left: number[] = [];
  for (let i = 0; i < rounds; i++) {
    left = await pidsOf(uid);
    if (!left.length) break;
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
  left = await pidsOf(uid);
  return { killed: killed.size, left };
}
