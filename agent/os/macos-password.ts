/**
 * Passwords on macOS: set through dscl's command mode, the password on its stdin only, in an
 * alphabet dscl's own word splitter cannot misread, and never in an error message.
 */
import { AccountError, assertValidName } from './backend.ts';
import { DENIED, MAC_BIN, oneLine, type MacDirectory } from './macos-dir.ts';

/**
 * Passwords we can hand to dscl's command mode: printable ASCII without space, `"`, `'` and
 * `\`, at most 128 characters.
 *
 * Why: dscl's command mode splits each stdin line into words itself, and that quoting is
 * undocumented. Apple's published (10.5-era) source splits on spaces and tabs, ends a quoted
 * word at EITHER quote character, drops a backslash before any character except at a word's
 * first position, and reads lines into a fixed 4096-byte buffer. With none of those characters
 * and a short line, every plausible splitter sees exactly `passwd`, the path and the password.
 * Newline, CR and NUL are excluded as well: a newline would start a second command. The
 * agent's generator (agent/credentials.ts) already stays inside this alphabet.
 */
export const MAC_PASSWORD = /^[!#-&(-[\]-~]{1,128}$/;

/** What dscl's command mode prints when a command fails (it still exits 0, see writePassword). */
const DSCL_FAILED = /error|too few parameters|usage:|invalid/i;
/**
 * Sets the password through dscl's command mode: `dscl -q .` reads commands from stdin
 * [M2] (-q: no prompt, plain line reading). Checked by passwordLastSetTime moving on.
 *
 * Why not `sysadminctl -resetPasswordFor … -newPassword -`: the prompt's stdin behaviour is
 * undocumented, and any argv form would expose the password to `ps`.
 */
export async function writePassword(dir: MacDirectory, name: string, password: string): Promise<void> {
  const before = await passwordSetAt(dir, name);
  const r = await dir.exec(MAC_BIN.dscl, ['-q', '.'], { stdin: dsclPasswdScript(name, password) });
  // Why read the output: in command mode dscl exits 0 even when a command failed (DSTools
  // source: the interactive loop always returns eDSNoErr); errors only show as text.
  // Why redact: a tool echoing its input line in an error would otherwise put the password
  // into our error message, and so into logs.
  const out = `${r.stdout}\n${r.stderr}`.split(password).join('***');
  if (r.code !== 0 || DSCL_FAILED.test(out)) {
    throw new AccountError(DENIED.test(out) ? 'ACCESS_DENIED' : 'COMMAND_FAILED', `dscl passwd for ${name} failed: ${oneLine(out)}`);
  }
  const after = await passwordSetAt(dir, name);
  if (after === undefined || (before !== undefined && after <= before)) {
    throw new AccountError('COMMAND_FAILED', `${name}: dscl reported no error but the password was not changed`);
  }
}

/** accountPolicyData's passwordLastSetTime (seconds, fractional). ⚠️ key as read by Salt. */
async function passwordSetAt(dir: MacDirectory, name: string): Promise<number | undefined> {
  const r = await dir.exec(MAC_BIN.dscl, ['.', '-readpl', `/Users/${name}`, 'accountPolicyData', 'passwordLastSetTime']);
  const m = r.code === 0 ? /passwordLastSetTime:\s*(\d+(?:\.\d+)?)/.exec(r.stdout) : null;
  return m ? Number(m[1]) : undefined;
}

/** The stdin payload for `dscl -q .`: one passwd command, then quit. Validates both values. */
export function dsclPasswdScript(name: string, password: string): string {
  assertValidName(name);
  assertMacPassword(password);
  return `passwd /Users/${name} ${password}\nquit\n`;
}

export function assertMacPassword(password: string): void {
  if (!MAC_PASSWORD.test(password)) {
    throw new AccountError('COMMAND_FAILED', 'password must be 1-128 printable ASCII characters without space, quotes or backslash');
  }
}
