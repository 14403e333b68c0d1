/**
 * What the server keeps for riding out a database outage, per running server:
 * the revoke journal, the live-grants index and a bounded database ping for /healthz. Attached to the server's
 * Ctx by journal/setup.ts at start.
 * (Held beside the Ctx rather than in it so the Ctx interface stays as it is;
 * see the report that introduced it.)
 */
import type { Ctx } from '../context.ts';
import type { LiveGrants } from '../store/liveGrants.ts';
import type { RevokeJournal } from './revokeJournal.ts';

export interface Outage {
  journal: RevokeJournal;
  liveGrants: LiveGrants;
  /** Resolves if the database answers a ping within ~1 s, else rejects. */
  ping(): Promise<void>;
}

const attached = new WeakMap<Ctx, Outage>();

export function attachOutage(ctx: Ctx, o: Outage): void {
  attached.set(ctx, o);
}

/** The server's outage kit, or null for a Ctx that was started without one (unit tests of other parts). */
export function outageOf(ctx: Ctx): Outage | null {
  return attached.get(ctx) ?? null;
}
