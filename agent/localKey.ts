/**
 * The agent's local key, in a file of its own next to the state file (mode
 * 0600), so the state file alone never reveals the SMTP password.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';

export async function loadOrCreateKey(stateFile: string): Promise<Buffer> {
  const file = `${stateFile}.key`;
  try {
    return Buffer.from((await readFile(file, 'utf8')).trim(), 'hex');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const key = randomBytes(32);
    await writeFile(file, key.toString('hex'), { mode: 0o600, flag: 'wx' });
    return key;
  }
}
