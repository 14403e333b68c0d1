import type { Instruction, PollResponse } from '../../protocol/messages.ts';
import { settingsRevision } from './smtpPolicies.ts';
import type { Ctx } from '../context.ts';
import { agentActor, audit } from '../store/audit.ts';
import type { InstructionDoc } from '../store/collections.ts';

const BATCH = 100;

/**
 * The long-poll: answers at once when the endpoint has unacknowledged
 * instructions or SMTP tests to run, else waits up to `waitMs` for a wake-up
 * (a new instruction, a test, or changed settings) and then answers.
 * Unacknowledged instructions are sent again on every poll, which is what makes
 * delivery survive lost responses; the agent deduplicates by id.
 */
export async function poll(ctx: Ctx, endpointId: string, waitMs: number, signal: AbortSignal): Promise<PollResponse> {
  const wait = ctx.hub.wait(endpointId, waitMs, signal);
  let answer = await pending(ctx, endpointId);
  if (!answer.instructions.length && !answer.smtpTests.length) {
    await wait.woken;
    answer = await pending(ctx, endpointId);
  }
  wait.cancel();
  return answer;
}

async function pending(ctx: Ctx, endpointId: string): Promise<PollResponse> {
  return { instructions: await queued(ctx, endpointId), settingsRevision: await settingsRevision(ctx, endpointId), smtpTests: ctx.smtpTests.forEndpoint(endpointId) };
}

async function queued(ctx: Ctx, endpointId: string): Promise<Instruction[]> {
  if (!ctx.hub.mayHavePending(endpointId)) return [];
  const version = ctx.hub.version(endpointId);
  const docs = await ctx.c.instructions.find({ endpointId, ackedAt: null }).sort({ createdAt: 1 }).limit(BATCH).toArray();
  if (docs.length === 0) ctx.hub.markClean(endpointId, version);
  return docs.map(toInstruction);
}

/** Marks instructions as received by their endpoint; ids of other endpoints are ignored. */
export async function ackInstructions(ctx: Ctx, endpointId: string, ids: string[]): Promise<void> {
  const docs = await ctx.c.instructions.find({ _id: { $in: ids }, endpointId, ackedAt: null }).toArray();
  if (!docs.length) return;
  await ctx.c.instructions.updateMany({ _id: { $in: docs.map((d) => d._id) }, endpointId }, { $set: { ackedAt: new Date() } });
  for (const d of docs) {
    await audit(ctx.c, { actor: agentActor(endpointId), type: 'instruction.delivered', grantId: d.grantId, endpointId, detail: { kind: d.kind, instructionId: d._id } });
  }
}

function toInstruction(d: InstructionDoc): Instruction {
  return { id: d._id, kind: d.kind, plan: d.plan };
}
