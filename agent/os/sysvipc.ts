/**
 * System V IPC objects (shared memory, message queues, semaphores) outlive the process and the
 * account that made them; the kernel lists them in /proc/sysvipc with their owner and creator.
 */
import { readFile } from 'node:fs/promises';
import type { Runner } from './exec.ts';

const KINDS = [
  { file: 'shm', flag: '-m' },
  { file: 'msg', flag: '-q' },
  { file: 'sem', flag: '-s' },
] as const;

export interface IpcObject {
  flag: (typeof KINDS)[number]['flag'];
  id: string;
}

/** Objects whose owner or creator is `uid`. */
export async function ipcObjectsOf(uid: string): Promise<IpcObject[]> {
  const found: IpcObject[] = [];
  for (const { file, flag } of KINDS) {
    const text = await readFile(`/proc/sysvipc/${file}`, 'utf8').catch(() => '');
    const [header, ...rows] = text.split('\n').filter((l) => l.trim());
    if (!header) continue;
    const cols = header.trim().split(/\s+/);
    const [idCol, uidCol, cuidCol] = [cols[1]!, cols.indexOf('uid'), cols.indexOf('cuid')];
    for (const row of rows) {
      const f = row.trim().split(/\s+/);
      if (f[uidCol] === uid || f[cuidCol] === uid) found.push({ flag, id: f[cols.indexOf(idCol)]! });
    }
  }
  return found;
}

/**
 * ipcrm of every object `uid` owns or created; one already gone counts as removed. Run as that
 * uid: removing another's object takes CAP_SYS_ADMIN, which the hardened service does not keep.
 */
export async function removeIpcObjects(uid: string, run: Runner): Promise<void> {
  for (const o of await ipcObjectsOf(uid)) {
    await run('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'ipcrm', o.flag, o.id], { okCodes: [0, 1] });
  }
}
