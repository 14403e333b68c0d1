/**
 * Passwordless sudo for an elevate-account grant on macOS, and the sudoers digest of the
 * rogue-admin guard: the Linux drop-in (linux-elevation.ts) written through the MacDirectory
 * executor, with the tools by their MAC_BIN paths.
 *
 * The drop-in: /etc/sudoers.d/jit-access-GRANT ('.' of the grant id as '_': sudo skips a name
 * with a '.'), root:wheel 0440, two lines: our marker `# jit-access grant=GRANT (…)`, then
 * `NAME ALL=(ALL:ALL) NOPASSWD: ALL`. How it gets there (as macos-backstop.ts writes a plist):
 * written in a private folder (mkdtemp: 0700, random name), `install -S -m 0440 -o root -g wheel`
 * beside the final file under a name sudo skips (FINAL.new), checked by sudo's own parser
 * (`visudo -c -q -f`), renamed into place (`mv -f`, one rename(2) in one folder: sudo never reads
 * half a file or an invalid one), read back with cat. revokeSudo removes it only if its first
 * line is our marker for that grant (two grant ids that differ by '.' and '_' share a path).
 *
 * ⚠️ To check on a real Mac: /etc/sudoers ends with `#includedir /private/etc/sudoers.d` (it
 * does since macOS 10.x per Apple's sudoers; if an administrator removed it, the drop-in is
 * valid but unused and sudo still asks for the password: fail-safe) and /etc/sudoers.d exists;
 * Apple's sudo skips names with a '.' (sudoers(5)); `install -S` and `mv -f` as documented; sudo
 * matches the user name as written (the name the grant gives, case included).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ELEVATION_ACCOUNT } from '../../protocol/accounts.ts';
import { AccountError, GRANT_ID } from './backend.ts';
import { failure, MAC_BIN, oneLine, statOf, type MacDirectory } from './macos-dir.ts';

export const SUDOERS = '/etc/sudoers';
export const SUDOERS_D = '/etc/sudoers.d';
/** Our drop-ins: excluded from the guard's digest (also read by the restore job's script, macos-restore-script.ts). */
export const DROP_IN_PREFIX = 'jit-access-';
/** Our drop-in's first line starts with this, the grant id and a space (also checked by the restore job's script). */
export const MARKER_LINE = '# jit-access grant=';
/**
 * What sudoers reads as an alias (or ALL) rather than a user name: `ADMINS ALL=…` would grant
 * every member of a User_Alias defined in /etc/sudoers, and visudo -c -f on our file alone
 * cannot see that (an undefined alias is no error). Such names are refused.
 */
const SUDOERS_ALIAS = /^[A-Z][A-Z0-9_]*$/;

/** The drop-in's path for a grant; throws for a grant id unfit for a file name (as on Linux). */
export function sudoDropIn(grantId: string): string {
  if (!GRANT_ID.test(grantId)) throw new AccountError('COMMAND_FAILED', 'grant id unfit for a file name');
  return `${SUDOERS_D}/${DROP_IN_PREFIX}${grantId.replace(/\./g, '_')}`;
}

/** The drop-in's text: exactly two lines, the same as Linux writes. */
export function sudoDropInText(name: string, grantId: string): string {
  return `${MARKER_LINE}${grantId} (removed at the end of the grant)\n${name} ALL=(ALL:ALL) NOPASSWD: ALL\n`;
}

/** Writes the drop-in for `name`, checked by visudo, renamed into place and read back. */
export async function grantMacSudo(dir: MacDirectory, name: string, grantId: string): Promise<void> {
  if (!ELEVATION_ACCOUNT.macos.test(name) || SUDOERS_ALIAS.test(name)) throw new AccountError('INVALID_NAME', `invalid account name ${JSON.stringify(name)}`);
  const file = sudoDropIn(grantId);
  const text = sudoDropInText(name, grantId);
  const tmp = `${file}.new`;
  const own = await mkdtemp(path.join(os.tmpdir(), 'jit-sudoers-'));
  try {
    const src = path.join(own, 'drop-in');
    await writeFile(src, text, { mode: 0o600, flag: 'wx' });
    await dir.mustRun(MAC_BIN.install, ['-S', '-m', '0440', '-o', 'root', '-g', 'wheel', src, tmp], `installing ${tmp}`);
  } finally {
    await rm(own, { recursive: true, force: true });
  }
  try {
    const check = await dir.exec(MAC_BIN.visudo, ['-c', '-q', '-f', tmp]);
    if (check.code !== 0) throw new AccountError('COMMAND_FAILED', `visudo refused the sudoers drop-in for ${name}: exit ${check.code} ${oneLine(check.stderr || check.stdout)}`.trim());
    await dir.mustRun(MAC_BIN.mv, ['-f', tmp, file], `moving ${tmp} into place`);
  } catch (e) {
    await dir.exec(MAC_BIN.rm, ['-f', tmp]).catch(() => {});
    throw e;
  }
  const back = await dir.exec(MAC_BIN.cat, [file]);
  if (back.code !== 0 || back.stdout !== text) {
    await dir.exec(MAC_BIN.rm, ['-f', file]).catch(() => {});
    throw new AccountError('COMMAND_FAILED', `${file} does not read back as written`);
  }
}

/** Removes the grant's drop-in if it carries our marker for that grant; missing = success. */
export async function revokeMacSudo(dir: MacDirectory, grantId: string): Promise<void> {
  const file = sudoDropIn(grantId);
  const r = await dir.exec(MAC_BIN.cat, [file]);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return;
    throw failure(`reading ${file}`, r);
  }
  if (!r.stdout.startsWith(`${MARKER_LINE}${grantId} `)) throw new AccountError('NOT_MANAGED', `${file} lacks the jit-access marker`);
  await dir.mustRun(MAC_BIN.rm, ['-f', file], `removing ${file}`);
  if (await statOf(dir, file)) throw new AccountError('COMMAND_FAILED', `${file} is still there`);
}

/**
 * sha256 over /etc/sudoers and every file of /etc/sudoers.d but our drop-ins, each preceded by
 * its path, as on Linux. Something unreadable counts as empty (as on Linux: the guard's
 * snapshot at enable must not fail the grant); the same state gives the same digest.
 */
export async function sudoersDigest(dir: MacDirectory): Promise<string> {
  const ls = await dir.exec(MAC_BIN.ls, [SUDOERS_D]);
  const names = ls.code === 0 ? ls.stdout.split('\n').filter((n) => n !== '' && !n.startsWith(DROP_IN_PREFIX)).sort() : [];
  const hash = createHash('sha256');
  for (const f of [SUDOERS, ...names.map((n) => `${SUDOERS_D}/${n}`)]) {
    const r = await dir.exec(MAC_BIN.cat, [f]);
    hash.update(`${f}\n`).update(r.code === 0 ? r.stdout : '');
  }
  return hash.digest('hex');
}
