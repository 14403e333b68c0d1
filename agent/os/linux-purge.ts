/**
 * What `userdel -r` leaves of a deleted Linux account, found by its uid: a home it kept, files in
 * the shared temporary folders, crontab and at jobs, System V IPC objects, sudo's timestamp and
 * systemd's linger flag. The caller has checked that no account has the uid any more.
 */
import { lstat, rm } from 'node:fs/promises';
import path from 'node:path';
import { AccountError, type AccountRef } from './backend.ts';
import type { Runner } from './exec.ts';
import { killAll } from './procs.ts';
import { ipcObjectsOf, removeIpcObjects } from './sysvipc.ts';

/** Where a deleted account's files can outlive it: shared temporary folders and the cron/at spools. */
export const LEFTOVER_DIRS = ['/tmp', '/var/tmp', '/dev/shm', '/var/spool/cron', '/var/spool/at'];

export interface PurgeOptions {
  /** Sandbox root for the account's own paths (home, sudo timestamp, linger flag); '/' for real. */
  root: string;
  /** Folders searched by uid (real ones even in a sandbox: see LinuxBackendOptions.leftoverDirs). */
  leftoverDirs: string[];
  /** No account has the name again: the files kept by name (sudo's timestamp, the linger flag) are its. */
  nameFree: boolean;
  run: Runner;
}

/** Removes it all, then looks again: throws naming what is still there, so the caller retries. */
export async function purgeLeftovers(account: AccountRef, o: PurgeOptions): Promise<void> {
  const uid = account.id;
  const inRoot = (p: string) => path.join(o.root, p);
  // Whatever still runs under the uid (the account was deleted by someone else while in use).
  const { left: running } = await killAll(uid);
  const home = inRoot(`/home/${account.name}`);
  const homeLeft = await lstat(home).catch(() => null);
  if (homeLeft && String(homeLeft.uid) === uid) await rm(home, { recursive: true, force: true });
  if (o.nameFree) for (const file of [`/run/sudo/ts/${account.name}`, `/var/lib/systemd/linger/${account.name}`]) await rm(inRoot(file), { force: true });

  const dirs: string[] = [];
  for (const d of o.leftoverDirs) if ((await lstat(d).catch(() => null))?.isDirectory()) dirs.push(d);
  // -xdev: not into other file systems mounted below; find never follows symlinks here. What
  // -delete could not remove is printed (-delete is false then): one run deletes and checks.
  const left = dirs.length ? (await o.run('find', [...dirs, '-xdev', '-depth', '-uid', uid, '(', '-delete', '-o', '-print', ')'], { okCodes: [0, 1] })).stdout.trim() : '';
  await removeIpcObjects(uid, o.run);

  const ipcLeft = (await ipcObjectsOf(uid)).length;
  if (left || ipcLeft || running.length) {
    const files = left ? `${left.split('\n').slice(0, 5).join(', ')} ` : '';
    const procs = running.length ? `processes ${running.join(', ')} ` : '';
    throw new AccountError('COMMAND_FAILED', `uid ${uid} still owns ${procs}${files}${ipcLeft ? `${ipcLeft} IPC object(s)` : ''}`.trim());
  }
}
