/**
 * Folders only root can change (Linux, macOS): the checks install makes before it trusts or
 * creates one, and the read-back after. Real file system calls; Windows has its own
 * (windowsAcl.ts).
 *
 * A folder (or file) is root's alone when it is owned by root, not writable by its group or
 * others, not a symbolic link, and every folder above it is the same. Folders above may be
 * world-writable only with the sticky bit (/tmp): nobody else can then rename or delete what
 * root put there. Why the folders above count: whoever can write a parent can rename the folder
 * away and put their own in its place.
 *
 * When install runs as non-root (only tests do: install itself refuses), "root" means the
 * current user, so the same code runs on a temporary folder.
 */
import { chmod, lchown, lstat, mkdir, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { Stats } from 'node:fs';

const S_ISVTX = 0o1000;

/** The owner expected of everything we create: root, or the current user outside root (tests). */
export function expectedOwner(): number {
  return process.getuid?.() ?? 0;
}

function ownerOk(uid: number): boolean {
  return uid === 0 || uid === expectedOwner();
}

function modeText(st: Stats): string {
  return `mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}`;
}

/** Why `p` (whose lstat is `st`) is not root's alone, or null. */
function statProblem(p: string, st: Stats, above: boolean): string | null {
  if (st.isSymbolicLink()) return `${p} is a symbolic link`;
  if (!ownerOk(st.uid)) return `${p} is owned by uid ${st.uid}, not root`;
  if (st.mode & 0o022) {
    if (above && st.isDirectory() && st.mode & S_ISVTX) return null;
    return `${p} is writable by ${st.mode & 0o020 ? 'its group' : 'others'} (${modeText(st)})`;
  }
  return null;
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  return lstat(p).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
}

/**
 * null when `p` (if it exists) and every folder above it are root's alone, else why not.
 * The folders above are checked on their real path (a link above is fine if root's); a link at
 * `p` is refused, or with `followLinks` checked together with what it points to.
 */
export async function unixTrustProblem(p: string, o: { followLinks?: boolean } = {}): Promise<string | null> {
  let abs = path.resolve(p);
  if (o.followLinks) {
    // The link's own folders count too: whoever could write them could point it elsewhere.
    const above = await chainProblem(path.dirname(abs), abs);
    if (above) return above;
    abs = await realpath(abs);
  }
  const st = await lstatOrNull(abs);
  if (st) {
    const problem = statProblem(abs, st, false);
    if (problem) return problem;
  }
  let parent = path.dirname(abs);
  while (!(await lstatOrNull(parent))) parent = path.dirname(parent);
  return chainProblem(parent, abs);
}

/** The existing folder `dir` and every one above it, on its real path. */
async function chainProblem(dir: string, of: string): Promise<string | null> {
  for (let d = await realpath(dir); ; d = path.dirname(d)) {
    const problem = statProblem(d, await lstat(d), true);
    if (problem) return `${problem} (a folder above ${of})`;
    if (path.dirname(d) === d) return null;
  }
}

/** Takes a folder we just created (or found): a real folder, ours, then root:root and `mode`. */
async function claim(dir: string, mode: number): Promise<void> {
  const st = await lstat(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) throw new Error(`${dir} is not a folder (a link or a file is in its place)`);
  if (!ownerOk(st.uid)) throw new Error(`${dir} is owned by uid ${st.uid}: someone else created it; remove it and run install again`);
  if (expectedOwner() === 0) await lchown(dir, 0, 0);
  await chmod(dir, mode);
}

/**
 * Creates `dir` with exactly `mode` (missing parents 0755), all owned by root, one level at a
 * time so that a folder someone else slipped in is noticed, then reads it back.
 */
export async function makeSecureDir(dir: string, mode: number): Promise<void> {
  const abs = path.resolve(dir);
  const missing: string[] = [];
  for (let d = abs; !(await lstatOrNull(d)); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    await mkdir(d, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    await claim(d, d === abs ? mode : 0o755);
  }
  if (!missing.includes(abs)) await claim(abs, mode);
  const st = await lstat(abs);
  const problem = statProblem(abs, st, false) ?? ((st.mode & 0o7777) !== mode ? `${abs} has ${modeText(st)}, not ${mode.toString(8).padStart(4, '0')}` : null);
  if (problem || !st.isDirectory()) throw new Error(`after creating it: ${problem ?? `${abs} is not a folder`}`);
}

/** Everything in the tree that is not root's alone (a link, another owner, group/other write, a device…); at most `limit`. */
export async function verifyTree(dir: string, limit = 20): Promise<string[]> {
  const problems: string[] = [];
  const walk = async (p: string): Promise<void> => {
    if (problems.length >= limit) return;
    const st = await lstat(p);
    const problem = statProblem(p, st, false) ?? (st.isDirectory() || st.isFile() ? null : `${p} is neither a file nor a folder`);
    if (problem) problems.push(problem);
    else if (st.isDirectory()) for (const name of (await readdir(p)).sort()) await walk(path.join(p, name));
  };
  await walk(path.resolve(dir));
  return problems;
}
