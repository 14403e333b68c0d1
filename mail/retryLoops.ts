/**
 * Background retry loops, one per key (a grant), shared by the agent's and the
 * server's credential delivery: starting a loop for a key cancels the older one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { MailError } from './smtp.ts';

const MAX_BACKOFF_MS = 30_000;

/** Wait after failed attempt `attempt` (1, 2, 3 …): 1 s, 2 s, 4 s … at most 30 s. */
export function backoffMs(attempt: number): number {
  return Math.min(1000 * 2 ** (attempt - 1), MAX_BACKOFF_MS);
}

/**
 * A failure as stored and shown: the mail error code when there is one. Never holds a password.
 * Why by name rather than instanceof: importing smtp.ts here would load nodemailer and luxon
 * into every idle agent, which only needs them when it sends.
 */
const failureText = (err: unknown): string =>
  err instanceof Error && err.name === 'MailError' ? `${(err as MailError).code}: ${err.message}` : (err as Error).message;

/** What a loop reports: success once, or each failed attempt. */
export interface LoopHandlers {
  done(): void | Promise<void>;
  failed(error: string, attempt: number): void | Promise<void>;
}

export class RetryLoops {
  private active = new Map<string, AbortController>();

  /**
   * Runs `attempt` until it succeeds, `until` (ms since epoch) passes or the loop
   * is cancelled, waiting 1 s, 2 s, 4 s … (at most 30 s) after each failure.
   * `done` runs before the loop stops counting as active.
   */
  start(key: string, until: number, attempt: () => Promise<void>, on: LoopHandlers): void {
    this.cancel(key);
    const abort = new AbortController();
    this.active.set(key, abort);
    const { signal } = abort;
    void (async () => {
      for (let n = 1; !signal.aborted && Date.now() < until; n++) {
        try {
          await attempt();
          if (!signal.aborted) await on.done();
          return;
        } catch (err) {
          if (signal.aborted) return;
          await on.failed(failureText(err), n);
          await sleep(backoffMs(n), undefined, { signal }).catch(() => {});
        }
      }
    })().finally(() => {
      if (this.active.get(key) === abort) this.active.delete(key);
    });
  }

  isActive(key: string): boolean {
    return this.active.has(key);
  }

  cancel(key: string): void {
    this.active.get(key)?.abort();
    this.active.delete(key);
  }

  cancelAll(): void {
    for (const key of [...this.active.keys()]) this.cancel(key);
  }
}
