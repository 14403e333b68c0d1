import type { Instruction, PollResponse } from '../../protocol/messages.ts';
import type { PushedInstruction } from '../agents/hub.ts';
import { settingsRevision } from './smtpPolicies.ts';
import type { Ctx } from '../context.ts';
import { isDbUnavailable, within } from '../db/unavailable.ts';
import { outageOf } from '../journal/registry.ts';
import { agentActor, audit } from '../store/audit.ts';
import type { InstructionDoc } from '../store/collections.ts';

const BATCH = 100;

/** How long a poll with instructions held in memory waits for the database before answering with those alone. */
const HELD_READ_BUDGET_MS = 1000;

/**
 * The long-poll: answers at once when the endpoint has unacknowledged
 * instructions or SMTP tests to run, else waits up to `waitMs` for a wake-up
 * (a new instruction, a test, or changed settings) and then answers.
 * Unacknowledged instructions are sent again on every poll, which is what makes
 * delivery survive lost responses; the agent deduplicates by id.
 * Instructions held in memory (`AgentHub.push`, a revoke while the database is
 * down) come first and are answered even when the database cannot be read;
 * without them, a poll that must read the database and cannot fails (503).
 */
export async function poll(ctx: Ctx, endpointId: string, waitMs: number, signal: AbortSignal): Promise<PollResponse> {
  const wait = ctx.hub.wait(endpointId, waitMs, signal);
  try {
    let answer = await pending(ctx, endpointId);
    if (!answer.instructions.length && !answer.smtpTests.length) {
      await wait.woken;
      answer = await pending(ctx, endpointId);
    }
    return answer;
  } finally {
    wait.cancel();
  }
}

async function pending(ctx: Ctx, endpointId: string): Promise<PollResponse> {
  const smtpTests = ctx.smtpTests.forEndpoint(endpointId);
  const read = Promise.all([queued(ctx, endpointId), settingsRevision(ctx, endpointId)]);
  try {
    const [stored, revision] = ctx.hub.pushed(endpointId).length ? await within(read, HELD_READ_BUDGET_MS, 'poll') : await read;
    ctx.hub.rememberRevision(endpointId, revision);
    // Taken after the read: one pushed while it ran comes too.
    const held = ctx.hub.pushed(endpointId);
    const heldIds = new Set(held.map((h) => h.id));
    return { instructions: [...held, ...stored.filter((i) => !heldIds.has(i.id))], settingsRevision: revision, smtpTests };
  } catch (err) {
    // Also taken now: a revoke pushed while the read waited on a database that then failed
    // is answered here, instead of waiting for a poll that can read it (AgentHub.canReach).
    const held = ctx.hub.pushed(endpointId);
    // The agent compares the revision with its own before it takes the instructions: only the
    // one it was last given keeps it from asking for settings the database cannot give.
    const revision = ctx.hub.lastRevision(endpointId);
    if (!held.length || revision === undefined || !isDbUnavailable(err)) throw err;
    return { instructions: held satisfies PushedInstruction[], settingsRevision: revision, smtpTests };
  }
}

async function queued(ctx: Ctx, endpointId: string): Promise<Instruction[]> {
  if (!ctx.hub.mayHavePending(endpointId)) return [];
  const version = ctx.hub.version(endpointId);
  const docs = await ctx.c.instructions.find({ endpointId, ackedAt: null }).sort({ createdAt: 1 }).limit(BATCH).toArray();
  if (docs.length === 0) ctx.hub.markClean(endpointId, version);
  noteLive(ctx, docs);
  return docs.map(toInstruction);
}

/** Marks instructions as received by their endpoint; ids of other endpoints are ignored. */
export async function ackInstructions(ctx: Ctx, endpointId: string, ids: string[]): Promise<void> {
  // Held instructions are acked in memory: their grant's revoke reaches the database by the journal.
  const storedIds = ctx.hub.ackPushed(endpointId, ids);
  if (!storedIds.length) return;
  const docs = await ctx.c.instructions.find({ _id: { $in: storedIds }, endpointId, ackedAt: null }).toArray();
  if (!docs.length) return;
  await ctx.c.instructions.updateMany({ _id: { $in: docs.map((d) => d._id) }, endpointId }, { $set: { ackedAt: new Date() } });
  noteLive(ctx, docs);
  for (const d of docs) {
    await audit(ctx.c, { actor: agentActor(endpointId), type: 'instruction.delivered', grantId: d.grantId, endpointId, detail: { kind: d.kind, instructionId: d._id } });
  }
}

/** A plan its agent has seen: keep its grant in the live-grants index (see store/liveGrants.ts). */
function noteLive(ctx: Ctx, docs: InstructionDoc[]): void {
  const live = outageOf(ctx)?.liveGrants;
  for (const d of docs) live?.note(d.grantId, d.endpointId, d.plan);
}

function toInstruction(d: InstructionDoc): Instruction {
  return { id: d._id, kind: d.kind, plan: d.plan };
}
