/**
 * Who is at the other end of the local socket, from the OS and not from the client: Node cannot
 * read a Unix socket's peer credentials (SO_PEERCRED, getpeereid), so the agent asks the caller
 * to create a file named by a fresh random challenge in a folder where everyone may create files
 * and nobody may list, move or remove another's (root's, mode 1733: sticky, write and search
 * only). The OS makes the creator its owner; the agent reads that owner and removes the file.
 *
 * Refused: anything that is not a plain file with one link (a hard link to another user's file,
 * a symbolic link, a folder), a challenge not issued to this connection or used already.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';

export class ProofFolder {
  constructor(readonly dir: string) {}

  /** Made fresh at each start: root's, 1733; whatever was in it is dropped. */
  async prepare(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o1733);
  }

  challenge(): string {
    return randomBytes(32).toString('hex');
  }

  /** The uid that created `<dir>/<challenge>` (then removed), or null if there is no valid proof. */
  async ownerOf(challenge: string): Promise<number | null> {
    if (!/^[0-9a-f]{64}$/.test(challenge)) return null;
    const file = path.join(this.dir, challenge);
    const st = await lstat(file).catch(() => null);
    if (!st) return null;
    // Never a recursive removal as root of what a user made: an empty folder goes, anything else waits for the next start.
    await (st.isDirectory() ? rmdir(file) : unlink(file)).catch(() => {});
    if (!st.isFile() || st.nlink !== 1) return null;
    return st.uid;
  }
}
