/**
 * Runs async steps one after another per key, in this process; steps of
 * different keys overlap. Why: FerretDB cannot make a read-decide-write atomic
 * (findAndModify is not atomic there, and a conditional update on anything but
 * `_id` scans the whole collection), and the server is one process per
 * database, so an in-process queue guards as well. Used for Agenda's job writes
 * (db/agenda.ts) and for grant state changes (commands/transition.ts).
 */
export class SerialQueues {
  private tails = new Map<string, Promise<unknown>>();

  /** Runs `step` once every earlier step of `key` has settled; a failure reaches this caller only. */
  run<T>(key: string, step: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(step);
    const tail = result.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => this.tails.get(key) === tail && this.tails.delete(key));
    return result;
  }
}
