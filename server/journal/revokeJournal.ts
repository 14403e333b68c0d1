/**
 * The revoke journal: revokes accepted while the database was unreachable, on
 * the server's own disk, so none is lost until the database has it.
 *
 * `<dataDir>/journal/revokes.jsonl`, mode 0600 in a 0700 folder: one JSON
 * object per line (`RevokeEntry`), appended and fsynced before the revoke is
 * answered 202. Replayed (commands/revokeGrant.ts) at start and as soon as the
 * database answers again; the entries applied are then cut from the file
 * (rewritten to a temporary file, fsynced, renamed over it). A last line without
 * its newline is a write the process died in (before fsync, so before any
 * answer): it is dropped when the file is opened.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';

export interface RevokeEntry {
  /** Format version. */
  v: 1;
  /** The entry's own id: replay records it in the database, so it is applied once. */
  id: string;
  kind: 'revoke';
  grantId: string;
  endpointId: string;
  /** Who asked, as audit events name actors ("admin", "user:<email>"). */
  actor: string;
  /** When it was asked (ISO 8601). */
  at: string;
  /** The revoke instruction pushed to the agent from memory. */
  instructionId: string;
}

export type JournalLog = (msg: string, detail?: Record<string, unknown>) => void;

export class RevokeJournal {
  private entries: RevokeEntry[] = [];
  /** Serialises appends and rewrites, so a rewrite never drops an entry appended meanwhile. */
  private lock: Promise<unknown> = Promise.resolve();

  private constructor(readonly file: string) {}

  static async open(file: string, log: JournalLog = () => {}): Promise<RevokeJournal> {
    const j = new RevokeJournal(file);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
    if (text === null) {
      await j.rewrite([]);
      return j;
    }
    const lines = text.split('\n');
    const torn = lines.pop() ?? '';
    if (torn) log('revoke journal: dropped a line cut short by a crash', { line: torn.slice(0, 200) });
    for (const line of lines) {
      if (!line.trim()) continue;
      const e = parseEntry(line);
      if (e) j.entries.push(e);
      else log('revoke journal: skipped a line that is not an entry', { line: line.slice(0, 200) });
    }
    if (torn || j.entries.length !== lines.filter((l) => l.trim()).length) await j.rewrite(j.entries);
    return j;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The entries not yet applied, oldest first. */
  list(): readonly RevokeEntry[] {
    return [...this.entries];
  }

  pendingFor(grantId: string): RevokeEntry | undefined {
    return this.entries.find((e) => e.grantId === grantId);
  }

  /** Appends `e` and returns once it is on disk (fsynced). */
  append(e: RevokeEntry): Promise<void> {
    return this.exclusive(async () => {
      const fh = await open(this.file, 'a', 0o600);
      try {
        await fh.write(`${JSON.stringify(e)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      this.entries.push(e);
    });
  }

  /** Cuts the entries with these ids from the journal (and the file). */
  remove(ids: ReadonlySet<string>): Promise<void> {
    return this.exclusive(async () => {
      const rest = this.entries.filter((e) => !ids.has(e.id));
      if (rest.length === this.entries.length) return;
      await this.rewrite(rest);
      this.entries = rest;
    });
  }

  private async rewrite(entries: RevokeEntry[]): Promise<void> {
    const tmp = `${this.file}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.write(entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
    const dir = await open(path.dirname(this.file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => {});
    return run;
  }
}

function parseEntry(line: string): RevokeEntry | null {
  try {
    const o = JSON.parse(line) as Partial<RevokeEntry>;
    const strings = [o.id, o.grantId, o.endpointId, o.actor, o.at, o.instructionId].every((v) => typeof v === 'string' && v.length > 0);
    return o.v === 1 && o.kind === 'revoke' && strings && !Number.isNaN(Date.parse(o.at!)) ? (o as RevokeEntry) : null;
  } catch {
    return null;
  }
}
