/**
 * The inventory the agent reports: its local accounts and what it can do (protocol Inventory).
 * People's accounts first, so a machine with many system accounts still lists every person's.
 */
import { INVENTORY_MAX_ACCOUNTS, type Inventory } from '../protocol/messages.ts';
import type { AccountBackend } from './os/backend.ts';

export async function takeInventory(backend: AccountBackend): Promise<Inventory> {
  const e = backend.elevation;
  if (!e) return { accounts: [], capabilities: [] };
  const all = await e.accounts();
  const ordered = [...all.filter((a) => !a.system), ...all.filter((a) => a.system)];
  return { accounts: ordered.slice(0, INVENTORY_MAX_ACCOUNTS), capabilities: [...e.capabilities] };
}

/** Sends the inventory when it differs from the last one the server took. */
export class InventoryReporter {
  private sent = '';

  constructor(
    private readonly backend: AccountBackend,
    private readonly send: (inv: Inventory) => Promise<void>,
  ) {}

  async report(): Promise<void> {
    const inv = await takeInventory(this.backend);
    const text = JSON.stringify(inv);
    if (text === this.sent) return;
    await this.send(inv);
    this.sent = text;
  }
}
