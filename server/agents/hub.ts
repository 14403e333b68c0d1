/**
 * Wakes the long-poll requests of connected agents when an instruction is
 * queued for them. It holds no instructions itself: a woken request reads
 * them from the database, so a missed wake-up costs latency, never data.
 */
export interface Wait {
  /** Resolves on the next notify, the timeout or the abort, whichever is first. */
  woken: Promise<void>;
  /** Stops waiting now. */
  cancel(): void;
}

export class AgentHub {
  private waiters = new Map<string, Set<() => void>>();
  /** Bumped by every notify; see `mayHavePending`. */
  private versions = new Map<string, number>();
  /** Endpoints known to have nothing queued, as of the version stored. */
  private clean = new Map<string, number>();

  version(endpointId: string): number {
    return this.versions.get(endpointId) ?? 0;
  }

  /**
   * False only when a query found nothing queued and nothing was queued since:
   * then a poll can skip the database. Why: on FerretDB every such query scans
   * the whole collection, and idle polls are most of a fleet's traffic.
   */
  mayHavePending(endpointId: string): boolean {
    return this.clean.get(endpointId) !== this.version(endpointId);
  }

  /** Records that a query begun at `version` found nothing queued. */
  markClean(endpointId: string, version: number): void {
    this.clean.set(endpointId, version);
  }

  /** Registers at once, so a notify that comes before `await woken` is not lost. */
  wait(endpointId: string, ms: number, signal: AbortSignal): Wait {
    let cancel = () => {};
    const woken = new Promise<void>((resolve) => {
      const set = this.waiters.get(endpointId) ?? new Set();
      this.waiters.set(endpointId, set);
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(endpointId) === set) this.waiters.delete(endpointId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      set.add(done);
      cancel = done;
    });
    return { woken, cancel };
  }

  notify(endpointId: string): void {
    this.versions.set(endpointId, this.version(endpointId) + 1);
    for (const wake of [...(this.waiters.get(endpointId) ?? [])]) wake();
  }

  /** True while the endpoint holds an open long-poll. */
  isConnected(endpointId: string): boolean {
    return this.waiters.has(endpointId);
  }

  /** Wakes every waiting agent: at shutdown, or when settings that may concern all of them change. */
  notifyAll(): void {
    for (const id of [...this.waiters.keys()]) this.notify(id);
  }
}
