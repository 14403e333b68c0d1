import { randomUUID } from 'node:crypto';
import type { Plan } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';
import { requesterLabel } from '../mail/requester.ts';
import type { GrantDoc, InstructionDoc } from '../store/collections.ts';

/** The plan an agent needs to run the grant alone: dates as ISO strings. */
export function planOf(g: GrantDoc): Plan {
  const requestedBy = requesterLabel(g.createdBy);
  return {
    grantId: g._id,
    group: g.group,
    email: g.email,
    startAt: g.startAt.toISOString(),
    enableAt: g.enableAt.toISOString(),
    endAt: g.endAt.toISOString(),
    serverSideSmtp: g.serverSideSmtp,
    ...(requestedBy ? { requestedBy } : {}),
  };
}

/** Queues an instruction for the grant's endpoint and wakes its long-poll. */
export async function queueInstruction(ctx: Ctx, g: GrantDoc, kind: InstructionDoc['kind']): Promise<void> {
  await ctx.c.instructions.insertOne({
    _id: randomUUID(),
    endpointId: g.endpointId,
    grantId: g._id,
    kind,
    plan: planOf(g),
    createdAt: new Date(),
    ackedAt: null,
  });
  ctx.hub.notify(g.endpointId);
}
