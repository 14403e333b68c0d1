/**
 * The simulated Mac's sudoers: /etc/sudoers and /etc/sudoers.d as a fresh Mac has them, and the
 * tools the passwordless-sudo drop-in needs beyond install, cat, rm, ls and stat: visudo (sudo's
 * REAL parser: this machine's /usr/sbin/visudo checks the content) and mv.
 * ⚠️ marks behaviour taken from man pages or Apple's files, not seen on a Mac.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FakeMac, FsEntry, Out } from './fakeMac.ts';

/** This machine's visudo, which judges the content for the model. */
const REAL_VISUDO = '/usr/sbin/visudo';

/**
 * The end of a fresh Mac's /etc/sudoers ⚠️ (Apple's file, abbreviated: the Defaults lines and
 * comments above these are left out). macOS's /etc is /private/etc: the includedir is our folder.
 */
export const MAC_SUDOERS = `# This file MUST be edited with the 'visudo' command as root.
Defaults\tenv_reset
Defaults\tenv_keep += "HOME MAIL"

# root and users in group wheel can run anything on any machine as any user
root\t\tALL = (ALL) ALL
%admin\t\tALL = (ALL) ALL

## Read drop-in files from /private/etc/sudoers.d
## (the '#' here does not indicate a comment)
#includedir /private/etc/sudoers.d
`;

/** What a fresh Mac has: /etc, /etc/sudoers.d (empty), /etc/sudoers root:wheel 0440. */
export const SUDOERS_FILES: [string, FsEntry][] = [
  ['/etc', { uid: 0, type: 'Directory' }],
  ['/etc/sudoers.d', { uid: 0, gid: 0, mode: 0o755, type: 'Directory' }],
  ['/etc/sudoers', { uid: 0, gid: 0, mode: 0o440, type: 'Regular File', content: MAC_SUDOERS }],
];

/** The tools by path: visudo, mv. */
export const SUDO_TOOLS: Record<string, (mac: FakeMac, file: string, a: string[]) => Out> = {
  '/usr/sbin/visudo': visudo,
  '/bin/mv': mv,
};

/**
 * `visudo -c -q -f FILE`: the model's file, copied to a private folder here, checked by the real
 * visudo in the same mode; its exit status and output are the answer (the copy's path shown as
 * FILE). Exit 1 for a file that is not there (what visudo answers ⚠️).
 */
function visudo(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 4 || a[0] !== '-c' || a[1] !== '-q' || a[2] !== '-f' || !a[3]!.startsWith('/')) return mac.unknown(file, a);
  const p = a[3]!;
  const e = mac.fs.get(p);
  if (!e || e.type !== 'Regular File') return { code: 1, stderr: `visudo: unable to open ${p}: No such file or directory\n` };
  if (e.content === undefined) return mac.unknown(file, a); // a file whose content the model does not know
  if (!existsSync(REAL_VISUDO)) throw new Error(`${REAL_VISUDO} is needed to check sudoers content (install sudo)`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jit-fakevisudo-'));
  try {
    const copy = path.join(dir, path.basename(p));
    writeFileSync(copy, e.content, { mode: e.mode ?? 0o440 });
    const r = spawnSync(REAL_VISUDO, ['-c', '-q', '-f', copy], { encoding: 'utf8' });
    if (r.error) throw r.error;
    const shown = (s: string) => s.split(copy).join(p);
    return { code: r.status ?? 1, stdout: shown(r.stdout), stderr: shown(r.stderr) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `mv -f SRC DEST` of a file within the model: one rename(2), DEST replaced, owner and mode kept.
 * A DEST that is a folder (mv would move SRC into it) is not modelled.
 */
function mv(mac: FakeMac, file: string, a: string[]): Out {
  if (a.length !== 3 || a[0] !== '-f' || !a[1]!.startsWith('/') || !a[2]!.startsWith('/')) return mac.unknown(file, a);
  const [src, dest] = [a[1]!, a[2]!];
  const e = mac.fs.get(src);
  if (!e) return { code: 1, stderr: `mv: rename ${src} to ${dest}: No such file or directory\n` };
  if (e.type === 'Directory' || mac.fs.get(dest)?.type === 'Directory') return mac.unknown(file, a);
  if (mac.faults.notRoot || mac.faults.mvFails) return { code: 1, stderr: `mv: rename ${src} to ${dest}: Operation not permitted\n` };
  if (mac.fs.get(path.dirname(dest))?.type !== 'Directory') return { code: 1, stderr: `mv: rename ${src} to ${dest}: No such file or directory\n` };
  mac.fs.set(dest, { ...e });
  mac.fs.delete(src);
  return { code: 0 };
}
