import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A high-entropy random token, URL-safe. The prefix names its kind (as GitHub's
 * do) and keeps it from starting with "-", which a command line would read as
 * an option.
 */
export const newToken = (prefix: string, bytes = 32): string => `${prefix}_${randomBytes(bytes).toString('base64url')}`;

/**
 * sha256 is enough for our tokens: they are 256-bit random values, so there is
 * nothing for a slow password hash to protect against brute force.
 */
export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Constant-time comparison of two strings of any length. */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
