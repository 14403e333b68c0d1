import type { Collections } from './collections.ts';

/**
 * When each SMTP settings scope was last saved (0 = not set), cached in memory.
 * Why: every agent poll reports the revision of its effective settings, and a
 * database read per poll is most of an idle fleet's load. This process is the
 * only writer of the settings (savePolicy/deletePolicy call `forget`), so the
 * cache never goes stale; it starts empty and fills from the database.
 */
export class PolicyRevisions {
  private times = new Map<string, Promise<number>>();

  constructor(private c: Collections) {}

  /** The scope's `updatedAt` in ms, or 0 when the scope has no settings. */
  time(scope: string): Promise<number> {
    const cached = this.times.get(scope);
    if (cached) return cached;
    const t = this.c.smtpPolicies.findOne({ _id: scope }, { projection: { updatedAt: 1 } }).then((d) => d?.updatedAt.getTime() ?? 0);
    // A failed read is not cached: the next poll tries again.
    t.catch(() => this.times.get(scope) === t && this.times.delete(scope));
    this.times.set(scope, t);
    return t;
  }

  /** Call after the scope was written or deleted. */
  forget(scope: string): void {
    this.times.delete(scope);
  }
}
