/**
 * Encryption at rest for small secrets (SMTP passwords): AES-256-GCM in a
 * versioned text envelope `v1:<iv b64>:<tag b64>:<ciphertext b64>`.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

function checkKey(key: Buffer): void {
  if (key.length !== 32) throw new Error(`secret box key must be 32 bytes, got ${key.length}`);
}

/** Encrypts `plain` with a fresh random IV; the same input never gives the same box twice. */
export function encryptSecret(plain: string, key: Buffer): string {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return [VERSION, iv.toString('base64'), cipher.getAuthTag().toString('base64'), ct.toString('base64')].join(':');
}

/** Decrypts a box made by `encryptSecret`; throws if it was altered or the key is wrong. */
export function decryptSecret(box: string, key: Buffer): string {
  checkKey(key);
  const [version, iv, tag, ct, ...rest] = box.split(':');
  if (version !== VERSION || iv === undefined || tag === undefined || ct === undefined || rest.length > 0) {
    throw new Error(`not a ${VERSION} secret box`);
  }
  const ivBytes = Buffer.from(iv, 'base64');
  const tagBytes = Buffer.from(tag, 'base64');
  // Checked explicitly: GCM would accept other IV sizes, and a short tag weakens authentication.
  if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES) throw new Error(`malformed ${VERSION} secret box`);
  const decipher = createDecipheriv('aes-256-gcm', key, ivBytes, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(tagBytes);
  try {
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new Error('secret box cannot be decrypted: wrong key, or the data was tampered with');
  }
}

/**
 * Reads a 256-bit key given as 64 hex characters or as base64 of 32 bytes.
 * Surrounding white space is ignored, as keys often come from files or env vars with a newline.
 */
export function parseKey(s: string): Buffer {
  const t = s.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  const bytes = Buffer.from(t, 'base64');
  // Node's base64 decoder skips invalid characters, so re-encode to refuse anything not canonical.
  if (bytes.length === 32 && bytes.toString('base64') === t) return bytes;
  throw new Error('secret box key must be 64 hex characters or the base64 encoding of 32 bytes (e.g. `openssl rand -base64 32`)');
}
