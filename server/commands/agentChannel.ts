import type { Instruction } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';
import { audit } from '../store/audit.ts';
import type { InstructionDoc } from '../store/collections.ts';

const BATCH = 100;

/**
 * The long-poll: answers at once with the endpoint's unacknowledged
 * instructions, or waits for one to be queued, up to `waitMs`.
 * Unacknowledged instructions are sent again on every poll, which is what makes
 * delivery survive lost responses; the agent deduplicates by id.
 */
export async function pollInstructions(ctx: Ctx, endpointId: string, waitMs: number, signal: AbortSignal): Promise<Instruction[]> {
  await touch(ctx, endpointId);
  const deadline = Date.now() + waitMs;
  for (;;) {
    const wait = ctx.hub.wait(endpointId, Math.max(0, deadline - Date.now()), signal);
    const docs = await ctx.c.instructions.find({ endpointId, ackedAt: null }).sort({ createdAt: 1 }).limit(BATCH).toArray();
    if (docs.length || Date.now() >= deadline || signal.aborted) {
      wait.cancel();
      return docs.map(toInstruction);
    }
    await wait.woken;
  }
}

/** Marks instructions as received by their endpoint; ids of other endpoints are ignored. */
export async function ackInstructions(ctx: Ctx, endpointId: string, ids: string[]): Promise<void> {
  const docs = await ctx.c.instructions.find({ _id: { $in: ids }, endpointId, ackedAt: null }).toArray();
  if (!docs.length) return;
  await ctx.c.instructions.updateMany({ _id: { $in: docs.map((d) => d._id) }, endpointId }, { $set: { ackedAt: new Date() } });
  for (const d of docs) {
    await audit(ctx.c, { actor: `agent:${endpointId}`, type: 'instruction.delivered', grantId: d.grantId, endpointId, detail: { kind: d.kind, instructionId: d._id } });
  }
}

/** Records that the endpoint was seen now. */
export async function touch(ctx: Ctx, endpointId: string): Promise<void> {
  await ctx.c.endpoints.updateOne({ _id: endpointId }, { $set: { lastSeenAt: new Date() } });
}

function toInstruction(d: InstructionDoc): Instruction {
  return { id: d._id, kind: d.kind, plan: d.plan };
}
