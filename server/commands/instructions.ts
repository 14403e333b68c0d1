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
    operation: g.operation,
    ...(g.account ? { account: g.account } : {}),
    endAction: g.endAction ?? 'logoff',
    ...(g.wasMember === undefined ? {} : { wasMember: g.wasMember }),
    endWarnings: g.endWarnings ?? [],
    passwordlessSudo: g.passwordlessSudo ?? false,
    guard: g.guard ?? { action: 'remove', allowed: [] },
    group: g.group,
    email: g.email,
    startAt: g.startAt.toISOString(),
    enableAt: g.enableAt.toISOString(),
    endAt: g.endAt.toISOString(),
    serverSideSmtp: g.serverSideSmtp,
    ...(requestedBy ? { requestedBy } : {}),
  };
}

/**
 * Queues an instruction for the grant's endpoint and wakes its long-poll. With
 * `id`, an instruction of that id stored already (a repeated request) is kept
 * and nothing is added.
 */
export async function queueInstruction(ctx: Ctx, g: GrantDoc, kind: InstructionDoc['kind'], id: string = randomUUID()): Promise<void> {
  try {
    await ctx.c.instructions.insertOne({
      _id: id,
      endpointId: g.endpointId,
      grantId: g._id,
      kind,
      plan: planOf(g),
      createdAt: new Date(),
      ackedAt: null,
    });
  } catch (err) {
    if ((err as { code?: number }).code !== 11000) throw err;
  }
  ctx.hub.notify(g.endpointId);
}
