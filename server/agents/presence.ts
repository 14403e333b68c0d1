import type { Collections, EndpointDoc } from '../store/collections.ts';
import type { AgentHub } from './hub.ts';

/** How stale the stored `lastSeenAt` may get while the endpoint keeps polling. */
const PERSIST_EVERY_MS = 5 * 60_000;

/**
 * When each endpoint was last heard from. Kept in memory and written to the
 * endpoint's record at most every few minutes (and at shutdown). Why: every
 * agent polls about twice a minute, so a write per poll is most of a large
 * fleet's database load, and while the server runs its memory is the better
 * source anyway. After a restart the stored time is at most a few minutes old,
 * and agents reconnect within seconds.
 */
export class Presence {
  private seen = new Map<string, number>();
  private stored = new Map<string, number>();

  constructor(
    private c: Collections,
    private hub: AgentHub,
    /** Between two polls an agent is briefly not connected: this long counts as online. */
    private graceMs: number,
  ) {}

  /** Records a request from the endpoint now. */
  async heard(e: EndpointDoc): Promise<void> {
    const now = Date.now();
    this.seen.set(e._id, now);
    const stored = this.stored.get(e._id) ?? e.lastSeenAt.getTime();
    if (now - stored < PERSIST_EVERY_MS) return;
    this.stored.set(e._id, now);
    await this.persist(e._id, now);
  }

  lastSeen(e: EndpointDoc): Date {
    return new Date(Math.max(this.seen.get(e._id) ?? 0, e.lastSeenAt.getTime()));
  }

  /** Holding a long-poll now, or heard from within the grace period. */
  isOnline(e: EndpointDoc, now = Date.now()): boolean {
    return this.hub.isConnected(e._id) || now - this.lastSeen(e).getTime() < this.graceMs;
  }

  /** Writes every time not yet stored; call at shutdown. */
  async flush(): Promise<void> {
    for (const [id, at] of this.seen) {
      if ((this.stored.get(id) ?? 0) >= at) continue;
      this.stored.set(id, at);
      await this.persist(id, at);
    }
  }

  /**
   * Why `_id` alone in the filter and `$max`: FerretDB uses an index only for
   * `_id` filters, and `$max` never moves the time backwards.
   */
  private async persist(id: string, at: number): Promise<void> {
    await this.c.endpoints.updateOne({ _id: id }, { $max: { lastSeenAt: new Date(at) } });
  }
}
