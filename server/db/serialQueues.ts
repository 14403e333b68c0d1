import { isDbUnavailable } from './unavailable.ts';

/**
 * Runs async steps one after another per key, in this process; steps of
 * different keys overlap. Why: FerretDB cannot make a read-decide-write atomic
 * (findAndModify is not atomic there, and a conditional update on anything but
 * `_id` scans the whole collection), and the server is one process per
 * database, so an in-process queue guards as well. Used for Agenda's job writes
 * (db/agenda.ts), grant state changes (commands/transition.ts), logins,
 * enrollments and agent reports.
 *
 * A step that fails because the database is unreachable fails the steps queued
 * behind it at that moment with the same error, without running them. Why: each
 * of them would otherwise wait for the driver's limits in turn (2–3 s each with
 * the database frozen), so a request queued behind a backlog (Agenda starts a
 * scan per job name every processEvery, and keeps starting them during an
 * outage) got no answer at all instead of its 503. Steps queued after the
 * failure run normally: the database may be back.
 */
export class SerialQueues {
  private tails = new Map<string, Promise<unknown>>();
  private queued = 0;
  private failed = new Map<string, { upTo: number; err: unknown }>();

  /** Runs `step` once every earlier step of `key` has settled; a failure reaches this caller only (but see above). */
  run<T>(key: string, step: () => Promise<T>): Promise<T> {
    const mine = ++this.queued;
    const result = (this.tails.get(key) ?? Promise.resolve()).then(() => {
      const failed = this.failed.get(key);
      if (failed && mine <= failed.upTo) throw failed.err;
      return step().catch((err: unknown) => {
        if (isDbUnavailable(err)) this.failed.set(key, { upTo: this.queued, err });
        throw err;
      });
    });
    const tail = result.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) !== tail) return;
      this.tails.delete(key);
      this.failed.delete(key);
    });
    return result;
  }
}
