/**
 * Random account names and passwords, from generate-password (crypto-random).
 */
import generator from 'generate-password';
import { ACCOUNT_NAME } from './os/backend.ts';

/**
 * Symbols safe in every channel the password travels through (stdin of
 * chpasswd, PowerShell, dscl; email). Excluded: ':' (chpasswd's separator),
 * quotes, backslash, backtick, '$' and white space.
 */
const SYMBOLS = '!#%&*+-=?@^_~.,;()[]{}<>|/';

/** 24 characters from all four classes: above Windows' complexity rules (3 of 4 classes, ≥ 8). */
export function newPassword(): string {
  return generator.generate({ length: 24, numbers: true, symbols: SYMBOLS, uppercase: true, lowercase: true, strict: true });
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
