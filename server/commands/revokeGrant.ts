import { randomUUID } from 'node:crypto';
import type { Ctx } from '../context.ts';
import { isDbUnavailable, within } from '../db/unavailable.ts';
import { isFinal } from '../domain/lifecycle.ts';
import { ApiError, apiError } from '../errors.ts';
import { outageOf } from '../journal/registry.ts';
import type { RevokeEntry } from '../journal/revokeJournal.ts';
import { auditOnce } from '../store/audit.ts';
import type { GrantDoc } from '../store/collections.ts';
import { queueInstruction } from './instructions.ts';
import { verifyAt } from './scheduleGrant.ts';
import { applyEvent } from './transition.ts';

/**
 * How long a revoke waits for the database before it falls back to the journal:
 * the answer, either way, must come within 5 s.
 */
const DB_BUDGET_MS = 2500;

/** Ends a grant early: the agent logs the user off and deletes the account now. */
export async function revokeGrant(ctx: Ctx, grantId: string, actor: string): Promise<GrantDoc> {
  // A grant that already ended comes back unchanged (revoke never ends a grant by itself).
  const g = await applyEvent(ctx, grantId, { type: 'revoke' }, actor);
  if (!g) throw apiError('grant.not_found');
  if (isFinal(g.state)) {
    outageOf(ctx)?.liveGrants.ended(grantId);
    throw apiError('grant.not_revocable');
  }
  await queueInstruction(ctx, g, 'revoke');
  await ctx.scheduler.schedule('grant.verify', verifyAt(ctx, new Date()), { grantId, attempt: 0 });
  return g;
}

/** Stored (`journaled: false`), or accepted while the database was unreachable (`journaled: true`). */
export type RevokeAnswer = { journaled: false; grant: GrantDoc } | { journaled: true; grantId: string; requestedAt: string };

/**
 * The API's revoke: it takes effect or is refused within 5 s.
 * - The database answers: the normal revoke (`revokeGrant`).
 * - It does not (unreachable, or no answer within DB_BUDGET_MS), and the grant's agent
 *   holds an open long-poll: the revoke is appended to the journal on disk (fsynced),
 *   pushed to the agent from memory (its poll answers it without the database), and
 *   `journaled: true` comes back (the API answers 202). The database gets the revoke and
 *   its audit event as soon as it is back (`replayRevokes`).
 * - Otherwise 503 db.unavailable, and nothing was journaled or sent.
 * A grant with a revoke still in the journal is answered as journaled again at once.
 */
export async function requestRevoke(ctx: Ctx, grantId: string, actor: string): Promise<RevokeAnswer> {
  const o = outageOf(ctx);
  if (!o) return { journaled: false, grant: await revokeGrant(ctx, grantId, actor) };
  const pending = o.journal.pendingFor(grantId);
  if (pending) return { journaled: true, grantId, requestedAt: pending.at };
  try {
    return { journaled: false, grant: await within(revokeGrant(ctx, grantId, actor), DB_BUDGET_MS, 'revoke') };
  } catch (err) {
    if (!isDbUnavailable(err)) throw err;
    const live = o.liveGrants.get(grantId);
    const connected = live ? ctx.hub.isConnected(live.endpointId) : false;
    ctx.log.warn({ grantId, err: (err as Error).message, known: !!live, agentConnected: connected }, 'revoke: database unavailable');
    if (!live || !connected) throw apiError('db.unavailable');
    const entry: RevokeEntry = { v: 1, id: randomUUID(), kind: 'revoke', grantId, endpointId: live.endpointId, actor, at: new Date().toISOString(), instructionId: randomUUID() };
    await o.journal.append(entry);
    ctx.hub.push(live.endpointId, { id: entry.instructionId, kind: 'revoke', grantId, plan: live.plan });
    ctx.log.warn({ grantId, endpointId: live.endpointId, journalId: entry.id }, 'revoke journaled and pushed to the connected agent; stored when the database is back');
    return { journaled: true, grantId, requestedAt: entry.at };
  }
}

const replays = new WeakMap<Ctx, Promise<number>>();

/**
 * Applies the journal's revokes to the database, oldest first, and cuts the
 * applied ones from the journal; stops at the first that finds the database
 * unreachable. One replay at a time per server. Resolves to the number of
 * entries still waiting.
 */
export function replayRevokes(ctx: Ctx): Promise<number> {
  const o = outageOf(ctx);
  if (!o || o.journal.size === 0) return Promise.resolve(0);
  const running = replays.get(ctx);
  if (running) return running;
  const run = (async () => {
    const done = new Set<string>();
    for (const e of o.journal.list()) {
      try {
        await applyJournaled(ctx, e);
      } catch (err) {
        if (isDbUnavailable(err)) break;
        // Not the database: retrying cannot help, and a stuck entry would hold up every replay.
        ctx.log.error({ err, entry: e }, 'ALERT journaled revoke could not be applied: dropped from the journal');
      }
      done.add(e.id);
    }
    if (done.size) await o.journal.remove(done);
    if (done.size) ctx.log.info({ applied: done.size, left: o.journal.size }, 'revoke journal replayed');
    return o.journal.size;
  })().finally(() => replays.delete(ctx));
  replays.set(ctx, run);
  return run;
}

/** The audit id of a journaled revoke's request: one event per journal entry, however often it is replayed. */
export const journaledRevokeAuditId = (entryId: string) => `revoke-journal:${entryId}`;

/**
 * One journaled revoke, as the normal command would have done it, by its
 * original actor: first the audit event `grant.revoke-requested` (at the time it
 * was asked, also in `detail.journaledAt`), once per entry; then the revoke
 * itself (`revokeGrant`). A grant that has ended is left alone, and so is one
 * already revoking whose agent acked the pushed revoke; one revoking without
 * that ack (its revoke may have been stored just before the database went, or
 * this process restarted) gets the normal command again, which changes no state
 * and audits nothing but queues the revoke for its agent and a deletion check.
 * Safe to repeat: a replay cut short (database gone again, crash before the
 * journal was cut) redoes nothing that was done.
 */
async function applyJournaled(ctx: Ctx, e: RevokeEntry): Promise<void> {
  const g = await ctx.c.grants.findOne({ _id: e.grantId });
  const deliveredAt = ctx.hub.ackTime(e.instructionId);
  const leftAlone = !g || isFinal(g.state) || (g.state === 'revoking' && deliveredAt !== undefined);
  if (g) {
    await auditOnce(ctx.c, journaledRevokeAuditId(e.id), {
      actor: e.actor,
      at: new Date(e.at),
      type: 'grant.revoke-requested',
      grantId: e.grantId,
      endpointId: e.endpointId,
      detail: {
        journaledAt: e.at,
        recordedAt: new Date().toISOString(),
        journalId: e.id,
        instructionId: e.instructionId,
        ...(deliveredAt ? { deliveredAt: deliveredAt.toISOString() } : {}),
        stateWhenRecorded: g.state,
        ...(leftAlone ? { leftAlone: true } : {}),
      },
    });
  } else ctx.log.warn({ entry: e }, 'journaled revoke names no stored grant: nothing to do');
  if (!leftAlone) {
    try {
      await revokeGrant(ctx, e.grantId, e.actor);
    } catch (err) {
      // Ended or gone in between: nothing left to revoke.
      if (!(err instanceof ApiError)) throw err;
    }
  }
  // The database has the revoke now (or nothing is left to revoke): stop answering it from memory.
  ctx.hub.dropPushed(e.endpointId, e.instructionId);
}
