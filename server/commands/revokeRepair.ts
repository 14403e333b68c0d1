/**
 * A revoke is three writes: the grant's state (`revoking`, with its audit event),
 * the revoke instruction for the agent, the deletion check (`grant.verify`). A
 * database that goes away between them (or a crash, or a request whose answer
 * was given before its writes ended) leaves a grant `revoking` that its agent is
 * never told about and nobody checks. This finishes such revokes: at start and
 * every minute (server.ts), when a journaled revoke is replayed and when a
 * revoke is repeated (revokeGrant.ts).
 *
 * What counts as done: a revoke instruction stored for the grant (acked or not:
 * acked, the agent has it), and a deletion check still to run: the revoke's own,
 * a retry, one held after a start (any but the check scheduled for the grant's
 * end, which may be days away; that one counts once it is due within the grace).
 */
import type { Ctx } from '../context.ts';
import type { GrantDoc } from '../store/collections.ts';
import { queueInstruction } from './instructions.ts';
import { verifyAt } from './scheduleGrant.ts';

/** A revoke still being written by its request is left to it: those writes end by the driver's limits long before. */
const SETTLED_MS = 30_000;

export const REPAIR_EVERY_MS = 60_000;

export interface Underway {
  /** The revoke instruction had to be queued. */
  queued: boolean;
  /** The deletion check had to be scheduled. */
  scheduled: boolean;
}

/**
 * Makes sure each revoking grant has its revoke instruction and a deletion check
 * coming; adds only what is missing, so calling it again changes nothing.
 * `instructionSent`: the caller has seen to the instruction (queued it, or the agent
 * acked one pushed from memory during an outage): only the check is looked at.
 */
export async function ensureRevokeUnderway(ctx: Ctx, grants: GrantDoc[], instructionSent = false): Promise<Map<string, Underway>> {
  const out = new Map<string, Underway>();
  for (const g of grants) {
    // Looked up and added under the grant's lock, so two repairs of one grant (a replay and
    // the minute's sweep, a repeated revoke) do not both add.
    const done = await ctx.grantLocks.run(g._id, async () => {
      // Not an _id filter: a scan on FerretDB, of a collection that holds live grants' rows only.
      const sent = instructionSent || (await ctx.c.instructions.findOne({ grantId: g._id, kind: 'revoke' }, { projection: { _id: 1 } })) !== null;
      const checked = await checkComing(ctx, g);
      if (!sent) await queueInstruction(ctx, g, 'revoke');
      if (!checked) await ctx.scheduler.schedule('grant.verify', verifyAt(ctx, new Date()), { grantId: g._id, attempt: 0 });
      return { queued: !sent, scheduled: !checked };
    });
    out.set(g._id, done);
  }
  return out;
}

/** Whether a deletion check that is the revoke's (see above) is still to run. */
async function checkComing(ctx: Ctx, g: GrantDoc): Promise<boolean> {
  const due = (await ctx.scheduler.pending('grant.verify', [g._id])).get(g._id) ?? [];
  const endCheck = verifyAt(ctx, g.endAt).getTime();
  const soon = Date.now() + ctx.config.verifyGraceSeconds * 1000;
  return due.some((d) => d.getTime() !== endCheck || d.getTime() <= soon);
}

/**
 * Finishes every revoke left half-done (see above). `settledMs`: only grants that
 * became revoking at least this long ago (0 at start, when no request is running).
 * `live`: the live grants if read already (at start), else they are read.
 * Returns how many grants needed something.
 */
export async function repairRevokes(ctx: Ctx, settledMs = SETTLED_MS, live?: GrantDoc[]): Promise<number> {
  const settled = new Date(Date.now() - settledMs);
  // Not an _id filter: a scan on FerretDB, once a minute.
  const revoking = live
    ? live.filter((g) => g.state === 'revoking' && g.updatedAt <= settled)
    : await ctx.c.grants.find({ state: 'revoking', updatedAt: { $lte: settled } }).toArray();
  const done = await ensureRevokeUnderway(ctx, revoking);
  let repaired = 0;
  for (const [grantId, u] of done) {
    if (!u.queued && !u.scheduled) continue;
    repaired++;
    ctx.log.warn({ grantId, ...u }, 'revoke left half-done (database outage or crash): finished');
  }
  return repaired;
}
