import type { Collections, EndpointDoc } from '../store/collections.ts';
import type { AgentHub } from './hub.ts';

/** How stale the stored `lastSeenAt` may get while the endpoint keeps polling. */
const PERSIST_EVERY_MS = 5 * 60_000;
/** Silences remembered per endpoint (the latest ones). */
const SILENCES_KEPT = 16;

/** A time the endpoint was not heard from for longer than the online grace. */
export interface Silence {
  /** Last heard before it. */
  from: Date;
  /** Heard again; null while it lasts. */
  to: Date | null;
  /** Set when the silence began before this server process started (part of it may be the server's own downtime). */
  serverStartedAt?: Date;
}

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
  /**
   * Past silences, in memory only (a restart forgets them; what they explain is
   * written into the audit when a grant ends, see commands/neverEnabled.ts).
   */
  private silences = new Map<string, { from: number; to: number }[]>();
  private readonly startedAt = Date.now();

  constructor(
    private c: Collections,
    private hub: AgentHub,
    /** Between two polls an agent is briefly not connected: this long counts as online. */
    private graceMs: number,
  ) {}

  /** Records a request from the endpoint now. */
  async heard(e: EndpointDoc): Promise<void> {
    const now = Date.now();
    const before = this.lastSeen(e).getTime();
    if (now - before > this.graceMs && !this.hub.isConnected(e._id)) this.remember(e._id, before, now);
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

  /**
   * The silence `at` fell into, or null if the endpoint was heard from around
   * then. Why the online grace is the measure: between two polls an agent is
   * not heard from for up to its long-poll wait, and the grace is what the
   * server allows for that everywhere else (`isOnline`).
   */
  silenceAround(e: EndpointDoc, at: Date, now = Date.now()): Silence | null {
    const t = at.getTime();
    const past = (this.silences.get(e._id) ?? []).find((s) => s.from <= t && t <= s.to);
    if (past) return this.silence(past.from, past.to);
    const last = this.lastSeen(e).getTime();
    if (last <= t && t <= now && !this.isOnline(e, now)) return this.silence(last, null);
    return null;
  }

  private silence(from: number, to: number | null): Silence {
    return { from: new Date(from), to: to === null ? null : new Date(to), ...(from < this.startedAt ? { serverStartedAt: new Date(this.startedAt) } : {}) };
  }

  private remember(id: string, from: number, to: number): void {
    const list = this.silences.get(id) ?? [];
    list.push({ from, to });
    if (list.length > SILENCES_KEPT) list.shift();
    this.silences.set(id, list);
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
