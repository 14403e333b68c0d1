/**
 * An agent's inventory: its local accounts (the wizard offers the people's ones; the elevation
 * checks refuse system and temporary ones) and what it can do (elevationChecks.ts sends an
 * elevation only to an agent that says it can). Replaced whole on every report.
 */
import type { Inventory } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';

export async function storeInventory(ctx: Ctx, endpointId: string, inv: Inventory): Promise<void> {
  await ctx.c.endpoints.updateOne({ _id: endpointId }, { $set: { accounts: inv.accounts, capabilities: inv.capabilities, inventoryAt: new Date() } });
}
