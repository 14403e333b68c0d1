/**
 * Runs read-decide-write steps on one grant one after another, in this process.
 * Why not a conditional update (`{_id, state}`) as the guard: FerretDB uses an
 * index only for filters on `_id` alone and scans the whole grants collection
 * for anything else (measured 340 ms per update at 10,000 grants). The server
 * is one process per database (see server/db/agenda.ts), so an in-process lock
 * guards as well.
 */
export class GrantLocks {
  private tails = new Map<string, Promise<unknown>>();

  run<T>(grantId: string, step: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(grantId) ?? Promise.resolve()).then(step);
    const tail = result.catch(() => {});
    this.tails.set(grantId, tail);
    void tail.then(() => this.tails.get(grantId) === tail && this.tails.delete(grantId));
    return result;
  }
}
