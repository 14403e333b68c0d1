/**
 * The real file system for install and uninstall (ServiceFiles). On Windows the folders'
 * protection is set with icacls and checked through PowerShell instead (windowsAcl.ts), so
 * the Unix checks here answer "nothing to say" there.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, lchown, lstat, mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ServiceFiles } from './host.ts';
import { expectedOwner, makeSecureDir, unixTrustProblem, verifyTree } from './secureDir.ts';

const windows = process.platform === 'win32';
const asRoot = (): boolean => !windows && expectedOwner() === 0;

/** root:root (root:wheel on macOS: wheel is gid 0 there). */
async function rootOwns(p: string): Promise<void> {
  if (asRoot()) await lchown(p, 0, 0);
}

const ignoreMissing = (e: NodeJS.ErrnoException): false => {
  if (e.code === 'ENOENT') return false;
  throw e;
};

export const nodeFiles: ServiceFiles = {
  exists: (file) => lstat(file).then(() => true, ignoreMissing),
  read: (file) => readFile(file, 'utf8'),
  trustProblem: (p, o) => (windows ? Promise.resolve(null) : unixTrustProblem(p, o)),
  async makeSecureDir(dir, mode) {
    if (windows) await mkdir(dir, { recursive: true });
    else await makeSecureDir(dir, mode);
  },
  async write(file, text, mode) {
    await mkdir(path.dirname(file), { recursive: true });
    // Why a new file renamed into place: a link planted at `file` is replaced, never written through.
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, text, { mode, flag: 'wx' });
      if (!windows) {
        await chmod(tmp, mode);
        await rootOwns(tmp);
      }
      await rename(tmp, file);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  },
  async copyPayload(payload, dest, p) {
    const made = new Set<string>([dest]);
    const ensureDir = async (dir: string): Promise<void> => {
      if (made.has(dir)) return;
      await ensureDir(p.dirname(dir));
      await mkdir(dir, { mode: 0o755 });
      if (!windows) {
        await chmod(dir, 0o755);
        await rootOwns(dir);
      }
      made.add(dir);
    };
    for (const item of payload.items) {
      const target = p.join(dest, ...item.to.split('/'));
      await ensureDir(p.dirname(target));
      const mode = item.executable ? 0o755 : 0o644;
      // Never over an existing file: `dest` is a fresh folder, so anything there was not put by us.
      if (item.text !== undefined) await writeFile(target, item.text, { mode, flag: 'wx' });
      else await copyFile(item.from!, target, constants.COPYFILE_EXCL);
      if (!windows) {
        await chmod(target, mode);
        await rootOwns(target);
      }
    }
  },
  verifyTree: (dir) => (windows ? Promise.resolve([]) : verifyTree(dir)),
  rename: (from, to) => rename(from, to),
  removeTree: (dir) => rm(dir, { recursive: true, force: true }),
  remove: (file) => rm(file).then(() => true, ignoreMissing),
  removeDirIfEmpty: (dir) =>
    rmdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (!['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(e.code ?? '')) throw e;
    }),
};
