/**
 * Live grants by id, in memory: which endpoint each is on, and its plan (which
 * carries its end). Why: a revoke must reach the grant's agent even while the
 * database cannot be read (commands/revokeGrant.ts), and that needs the
 * grant's endpoint without a read.
 *
 * Loaded from the database at start, then kept current from what passes
 * through this process: a plan delivered to or acked by its agent adds it (so
 * every grant an agent can act on is here), and its move to a final state
 * drops it (commands/transition.ts `finish`, run again for any later event on
 * it, so a crash in between is made good). One kept too long costs nothing but
 * a revoke instruction to an agent that no longer has the grant, which it ignores.
 * One server process per database (see docs/agents.md) keeps this complete.
 */
import type { Plan } from '../../protocol/messages.ts';

export interface LiveGrant {
  endpointId: string;
  plan: Plan;
}

export class LiveGrants {
  private byId = new Map<string, LiveGrant>();

  get(grantId: string): LiveGrant | undefined {
    return this.byId.get(grantId);
  }

  /** Records (or refreshes) a live grant. */
  note(grantId: string, endpointId: string, plan: Plan): void {
    this.byId.set(grantId, { endpointId, plan });
  }

  /** Forgets a grant that has ended for good. */
  ended(grantId: string): void {
    this.byId.delete(grantId);
  }
}
