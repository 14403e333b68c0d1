/**
 * Deletion checks wait after a start until the agents have had their chance to
 * report. Why: an agent removes an expired account on its own, with the server
 * down too, and queues the reports; after a restart the overdue `grant.verify`
 * jobs would otherwise run at once (Agenda starts before the HTTP server
 * listens) and put grants whose accounts were deleted minutes ago into
 * `revocation-failed` with an alert, then back to `removed` seconds later.
 *
 * How long, counted from when the HTTP server listens: the agents' outbox
 * sender retries with a backoff capped at 15 s plus up to 25 % jitter
 * (agent/daemon.ts `backoff`), so every running agent sends again within
 * 18.75 s; or one long-poll interval if that is longer (an agent's requests
 * come at least that often); plus 2 s for the batch to be applied. With the
 * defaults (25 s long-polls) 27 s, in the tests (5 s) 20.75 s.
 *
 * Why not "until the grant's endpoint has polled once since the start": the
 * agent's poll loop and its outbox sender back off independently, so a poll
 * can get through while the reports still sleep in their backoff; a poll
 * proves the agent is up, not that its queued reports are in. An endpoint that
 * is really down is alerted one settle time later than without the hold, which
 * for a check that runs minutes after the end anyway costs nothing.
 *
 * The same after a database outage while the server stayed up: agents' reports
 * were refused (503 db.unavailable) and sit in their backoff, and the overdue
 * checks would run as soon as the database is back. So every 503 db.unavailable
 * this server answers (to anyone: API, console, agents, the request deadline)
 * counts as a start: the checks wait a settle time from the last one. An agent
 * refused at that time sends again within the settle time; one refused earlier,
 * sooner.
 */
import type { ServerConfig } from '../config.ts';
import type { Ctx } from '../context.ts';

/** agent/daemon.ts: backoff() is capped at 15 s and multiplied by 0.75–1.25. */
const AGENT_RETRY_CAP_MS = 15_000 * 1.25;
/** Time for the reports, once sent, to be applied (their request, the grant lock). */
const MARGIN_MS = 2_000;

export function startupSettleMs(config: Pick<ServerConfig, 'longPollSeconds'>): number {
  return Math.max(config.longPollSeconds * 1000, AGENT_RETRY_CAP_MS) + MARGIN_MS;
}

export class StartupHold {
  private listeningAt: number | null = null;
  private unavailableAt = 0;

  constructor(readonly settleMs: number) {}

  /** Call once the HTTP server listens: agents can reach it from now on. */
  listening(at = Date.now()): void {
    this.listeningAt ??= at;
  }

  /** Call when a request was answered 503 db.unavailable: whoever sent it comes back later. */
  databaseUnavailable(at = Date.now()): void {
    this.unavailableAt = Math.max(this.unavailableAt, at);
  }

  /**
   * When deletion checks may run: a settle time after the server started listening
   * and after the last request the database could not serve. Before the server
   * listens it is not known yet: a settle time from now, and the held job looks
   * again then.
   */
  until(now = Date.now()): number {
    return Math.max(this.listeningAt ?? now, this.unavailableAt) + this.settleMs;
  }
}

const holds = new WeakMap<Ctx, StartupHold>();

/** Makes the server's hold findable from its Ctx (by the error answers, see `noteDatabaseUnavailable`). */
export function attachHold(ctx: Ctx, hold: StartupHold): void {
  holds.set(ctx, hold);
}

/** Tells the server's hold that a request was answered 503 db.unavailable (see above). */
export function noteDatabaseUnavailable(ctx: Ctx): void {
  holds.get(ctx)?.databaseUnavailable();
}
