/**
 * Wakes the long-poll requests of connected agents when an instruction is
 * queued for them. Queued instructions live in the database: a woken request
 * reads them there, so a missed wake-up costs latency, never data.
 *
 * The one exception is `push`: an instruction held here, in memory, for an
 * endpoint whose agent is connected while the database cannot be written (a
 * revoke during an outage; the caller has journaled it on disk first, see
 * commands/revokeGrant.ts). The endpoint's next (or open) poll answers it
 * without reading the database; it is forgotten once acked, or once the
 * database has the instruction.
 */
import type { Plan } from '../../protocol/messages.ts';

/**
 * A revoke held in memory. It carries the plan as well as `grantId`: an agent
 * that predates plan-less revokes still accepts it, and one that knows the
 * grant finds it by either.
 */
export interface PushedInstruction {
  id: string;
  kind: 'revoke';
  grantId: string;
  plan: Plan;
}

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
  /** Instructions held in memory, by endpoint, then by instruction id. */
  private held = new Map<string, Map<string, PushedInstruction>>();
  /** When a held instruction was acked, by instruction id (read once by whoever stores it). */
  private ackedAt = new Map<string, Date>();
  /** The settings revision last answered to each endpoint, for polls that cannot read the database. */
  private revisions = new Map<string, string>();

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
    this.wake(endpointId);
  }

  /** Wakes the endpoint's open poll without marking the database as having something for it. */
  private wake(endpointId: string): void {
    for (const wake of [...(this.waiters.get(endpointId) ?? [])]) wake();
  }

  /** Holds `ins` for the endpoint and wakes its open poll (see the class comment). */
  push(endpointId: string, ins: PushedInstruction): void {
    const mine = this.held.get(endpointId) ?? new Map<string, PushedInstruction>();
    this.held.set(endpointId, mine.set(ins.id, ins));
    this.wake(endpointId);
  }

  /** The instructions held for the endpoint, oldest first. */
  pushed(endpointId: string): PushedInstruction[] {
    return [...(this.held.get(endpointId)?.values() ?? [])];
  }

  /** Takes the acks of held instructions; returns the other ids (stored instructions). */
  ackPushed(endpointId: string, ids: string[]): string[] {
    const mine = this.held.get(endpointId);
    if (!mine) return ids;
    const rest = ids.filter((id) => {
      if (!mine.delete(id)) return true;
      this.ackedAt.set(id, new Date());
      return false;
    });
    if (mine.size === 0) this.held.delete(endpointId);
    return rest;
  }

  /** When the agent acked a held instruction, if it did (and this process saw it). */
  ackTime(id: string): Date | undefined {
    return this.ackedAt.get(id);
  }

  /** Forgets a held instruction: the database has it now, or it is not needed. */
  dropPushed(endpointId: string, id: string): void {
    const mine = this.held.get(endpointId);
    mine?.delete(id);
    if (mine?.size === 0) this.held.delete(endpointId);
    this.ackedAt.delete(id);
  }

  rememberRevision(endpointId: string, revision: string): void {
    this.revisions.set(endpointId, revision);
  }

  lastRevision(endpointId: string): string | undefined {
    return this.revisions.get(endpointId);
  }

  /** True while the endpoint holds an open long-poll. */
  isConnected(endpointId: string): boolean {
    return this.waiters.has(endpointId);
  }

  /**
   * True when an instruction pushed now reaches the endpoint even if the database
   * cannot be read: it holds an open long-poll, and this process has answered it
   * before (its settings revision is known), which a poll needs to answer held
   * instructions alone (commands/agentChannel.ts). A poll that has not yet been
   * answered once since this process started does not count.
   */
  canReach(endpointId: string): boolean {
    return this.waiters.has(endpointId) && this.revisions.has(endpointId);
  }

  /** Wakes every waiting agent: at shutdown, or when settings that may concern all of them change. */
  notifyAll(): void {
    for (const id of [...this.waiters.keys()]) this.notify(id);
  }
}
