/**
 * Random account names (generate-password) and passwords (node's crypto.randomInt).
 */
import { randomInt } from 'node:crypto';
import generator from 'generate-password';
import { ACCOUNT_NAME } from './os/backend.ts';

/** Letters and digits without the look-alikes 0 O, 1 l I. */
const ALNUM = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
/**
 * Symbols safe in every channel the password travels through (stdin of chpasswd, PowerShell,
 * dscl's command mode, whose line is split on spaces; email). Left out: ':' (chpasswd's
 * separator), quotes, backslash, backtick, '$', white space (macOS refuses those, see
 * MAC_PASSWORD in os/macos.ts), '|' (reads as l or I), and ', . ;', which read as the
 * punctuation of the sentence around the password.
 */
const SYMBOLS = '!#%&*+-=?@^_~()[]{}<>/';

export const PASSWORD_LENGTH = 24;
/** First and last characters come from `edge`, the others from `inner`. */
export const PASSWORD_ALPHABETS = { edge: ALNUM, inner: ALNUM + SYMBOLS } as const;

const CLASSES = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/];

/**
 * 24 characters, each drawn uniformly, starting and ending with a letter or digit (nothing
 * to mistake for punctuation or an option), redrawn until all four classes are present
 * (Windows complexity; a redraw keeps every accepted password equally likely).
 * About 150 bits of entropy; agent/credentials.test.ts computes it.
 */
export function newPassword(): string {
  for (;;) {
    const { edge, inner } = PASSWORD_ALPHABETS;
    const pick = (alphabet: string) => alphabet[randomInt(alphabet.length)]!;
    const middle = Array.from({ length: PASSWORD_LENGTH - 2 }, () => pick(inner)).join('');
    const p = pick(edge) + middle + pick(edge);
    if (CLASSES.every((re) => re.test(p))) return p;
  }
}

/**
 * A random name valid on every OS: a lower-case letter, then 11 lower-case
 * letters or digits (12 ≤ 20 characters, the Windows limit). `taken` lets the
 * caller check both the OS and names it has already planned.
 */
export async function newAccountName(taken: (name: string) => Promise<boolean>): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const first = generator.generate({ length: 1, numbers: false, uppercase: false, lowercase: true });
    const name = first + generator.generate({ length: 11, numbers: true, uppercase: false, lowercase: true });
    if (ACCOUNT_NAME.test(name) && !(await taken(name))) return name;
  }
  throw new Error('could not find a free account name');
}
