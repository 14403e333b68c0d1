import { randomUUID } from 'node:crypto';
import type { Ctx } from '../context.ts';
import { DbTimeoutError, isDbUnavailable, within } from '../db/unavailable.ts';
import { isFinal } from '../domain/lifecycle.ts';
import { ApiError, apiError } from '../errors.ts';
import { outageOf } from '../journal/registry.ts';
import type { RevokeEntry } from '../journal/revokeJournal.ts';
import type { LiveGrants } from '../store/liveGrants.ts';
import { auditOnce } from '../store/audit.ts';
import type { GrantDoc } from '../store/collections.ts';
import { queueInstruction } from './instructions.ts';
import { ensureRevokeUnderway } from './revokeRepair.ts';
import { applyEvent } from './transition.ts';

/**
 * What a revoke leaves of its request's time for the fallback after the database
 * did not answer: appending to the journal (an fsync), pushing, answering.
 */
const FALLBACK_MARGIN_MS = 1500;
/** The least a revoke waits for the database, however little time its request has left. */
const MIN_DB_BUDGET_MS = 250;

/**
 * Ends a grant early: the agent logs the user off and deletes the account now.
 * Safe to repeat: a grant already revoking only gets what it lacks (its revoke
 * instruction, its deletion check; revokeRepair.ts). `onWrite` is called before
 * the first write.
 */
export async function revokeGrant(ctx: Ctx, grantId: string, actor: string, onWrite: () => void = () => {}): Promise<GrantDoc> {
  // A grant that already ended comes back unchanged (revoke never ends a grant by itself).
  const g = await applyEvent(ctx, grantId, { type: 'revoke' }, actor, onWrite);
  if (!g) throw apiError('grant.not_found');
  if (isFinal(g.state)) throw apiError('grant.not_revocable');
  onWrite();
  // revocation-failed: the admin asks again, so the agent is told again.
  if (g.state !== 'revoking') await queueInstruction(ctx, g, 'revoke');
  await ensureRevokeUnderway(ctx, [g], g.state !== 'revoking');
  return g;
}

/**
 * Stored (`journaled: false`), or accepted while the database did not answer
 * (`journaled: true`; `agentConnected`: it was pushed to the agent's open long-poll).
 */
export type RevokeAnswer = { journaled: false; grant: GrantDoc } | { journaled: true; grantId: string; requestedAt: string; agentConnected: boolean };

export interface RevokeRequest {
  /** When the request's deadline answers it (http/deadline.ts); the database gets that less the fallback's margin. */
  deadlineAt?: number;
  /** True once the request has been answered otherwise (the deadline's 503): nothing more may be promised. */
  answered?: () => boolean;
}

/**
 * The API's and the console's revoke: it takes effect or is refused within the request's time.
 * - The grant's agent holds an open long-poll that can be answered without the database
 *   (`AgentHub.canReach`): the revoke is journaled (fsynced) and pushed to it at once, so access
 *   ends now whatever the database does; then the normal revoke is tried. Stored in time: the
 *   entry leaves the journal (200); not: `journaled: true, agentConnected: true` (202), and the
 *   replay stores it when the database is back.
 * - The database answers: the normal revoke (`revokeGrant`).
 * - It does not, and the grant's agent holds an open long-poll that can be answered without the
 *   database (`AgentHub.canReach`): the revoke is appended to the journal on disk (fsynced),
 *   pushed to the agent from memory, and `journaled: true, agentConnected: true` comes back (202).
 *   The database gets the revoke and its audit event as soon as it is back (`replayRevokes`).
 * - It does not, the agent is not connected, but the revoke may have been (partly) stored or may
 *   still be: the database ran out of time while the revoke was still running, or failed after its
 *   first write. Refusing would be false (the revoke may well complete), so it is journaled as well
 *   (and held for the agent's next poll), and `journaled: true, agentConnected: false` comes back
 *   (202, `pending: true`): it is finished when the database answers, by the replay, by the call
 *   still running and by the repair of half-done revokes (revokeRepair.ts), whichever comes first.
 * - It failed before writing anything and the agent is not connected: 503 db.unavailable, and
 *   nothing was done (also when the request was answered already, or the grant is unknown here).
 * A grant with a revoke still in the journal is answered as journaled again at once.
 */
export async function requestRevoke(ctx: Ctx, grantId: string, actor: string, req: RevokeRequest = {}): Promise<RevokeAnswer> {
  const o = outageOf(ctx);
  if (!o) return { journaled: false, grant: await revokeGrant(ctx, grantId, actor) };
  const reach = (endpointId: string | undefined) => (endpointId ? ctx.hub.canReach(endpointId) : false);
  const pending = o.journal.pendingFor(grantId);
  if (pending) return { journaled: true, grantId, requestedAt: pending.at, agentConnected: reach(pending.endpointId) };
  const known = o.liveGrants.get(grantId);
  if (known && reach(known.endpointId)) return revokeReachable(ctx, grantId, actor, known, req);
  let wrote = false;
  try {
    return { journaled: false, grant: await within(revokeGrant(ctx, grantId, actor, () => (wrote = true)), budgetMs(ctx, req.deadlineAt), 'revoke') };
  } catch (err) {
    if (!isDbUnavailable(err)) throw err;
    const stillRunning = err instanceof DbTimeoutError;
    const live = o.liveGrants.get(grantId);
    const connected = reach(live?.endpointId);
    ctx.log.warn({ grantId, err: (err as Error).message, known: !!live, agentConnected: connected, stillRunning, wrote }, 'revoke: database unavailable');
    if (!live || (!connected && !stillRunning && !wrote) || req.answered?.()) throw apiError('db.unavailable');
    const entry: RevokeEntry = { v: 1, id: randomUUID(), kind: 'revoke', grantId, endpointId: live.endpointId, actor, at: new Date().toISOString(), instructionId: randomUUID() };
    await o.journal.append(entry);
    ctx.hub.push(live.endpointId, { id: entry.instructionId, kind: 'revoke', grantId, plan: live.plan });
    ctx.log.warn({ grantId, endpointId: live.endpointId, journalId: entry.id, agentConnected: connected }, 'revoke journaled (and held for the agent); stored when the database is back');
    return { journaled: true, grantId, requestedAt: entry.at, agentConnected: connected };
  }
}

/** Journaled entries a request is still handling: the replay leaves them to it. */
const inFlight = new WeakMap<Ctx, Set<string>>();
const inFlightOf = (ctx: Ctx) => inFlight.get(ctx) ?? inFlight.set(ctx, new Set()).get(ctx)!;

/** A connected agent's grant: journaled and pushed first, then stored if the database answers in time. */
async function revokeReachable(ctx: Ctx, grantId: string, actor: string, live: NonNullable<ReturnType<LiveGrants['get']>>, req: RevokeRequest): Promise<RevokeAnswer> {
  const o = outageOf(ctx)!;
  const entry: RevokeEntry = { v: 1, id: randomUUID(), kind: 'revoke', grantId, endpointId: live.endpointId, actor, at: new Date().toISOString(), instructionId: randomUUID() };
  const held = inFlightOf(ctx);
  held.add(entry.id);
  try {
    await o.journal.append(entry);
    ctx.hub.push(live.endpointId, { id: entry.instructionId, kind: 'revoke', grantId, plan: live.plan });
    try {
      const grant = await within(revokeGrant(ctx, grantId, actor), budgetMs(ctx, req.deadlineAt), 'revoke');
      await o.journal.remove(new Set([entry.id]));
      return { journaled: false, grant };
    } catch (err) {
      if (!isDbUnavailable(err)) {
        // A refusal (the grant has ended, is unknown): nothing to store later either.
        await o.journal.remove(new Set([entry.id]));
        throw err;
      }
      ctx.log.warn({ grantId, endpointId: live.endpointId, journalId: entry.id, err: (err as Error).message }, 'revoke pushed to the agent and journaled; stored when the database is back');
      return { journaled: true, grantId, requestedAt: entry.at, agentConnected: true };
    }
  } finally {
    held.delete(entry.id);
  }
}

/** How long a revoke waits for the database: what its request has left, less the fallback's margin. */
function budgetMs(ctx: Ctx, deadlineAt = Date.now() + ctx.config.requestDeadlineSeconds * 1000): number {
  return Math.max(MIN_DB_BUDGET_MS, deadlineAt - Date.now() - FALLBACK_MARGIN_MS);
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
    const held = inFlightOf(ctx);
    for (const e of o.journal.list()) {
      if (held.has(e.id)) continue; // its request is still storing it
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
 * itself (`revokeGrant`). A grant that has ended is left alone. One already
 * revoking whose agent acked the pushed revoke gets only its deletion check if
 * it has none (`leftAlone`: no new instruction); one revoking without that ack
 * (its revoke may have been stored just before the database went, or this
 * process restarted) gets the normal command again, which changes no state and
 * audits nothing but adds the revoke instruction and the deletion check it lacks.
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
  if (leftAlone && g && !isFinal(g.state)) await ensureRevokeUnderway(ctx, [g], true);
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
