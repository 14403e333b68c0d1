/**
 * Sets up what the server needs to ride out a database outage (journal/registry.ts):
 * opens the revoke journal, loads the live-grants index, replays what the journal
 * holds, and from then on replays it every second while it holds anything, so a
 * revoke is stored as soon as the database answers again.
 */
import path from 'node:path';
import type { Db } from 'mongodb';
import { planOf } from '../commands/instructions.ts';
import { replayRevokes } from '../commands/revokeGrant.ts';
import type { Ctx } from '../context.ts';
import { within } from '../db/unavailable.ts';
import type { GrantDoc } from '../store/collections.ts';
import { LiveGrants } from '../store/liveGrants.ts';
import { attachOutage } from './registry.ts';
import { RevokeJournal } from './revokeJournal.ts';

const REPLAY_EVERY_MS = 1000;
const PING_MS = 1000;

export function journalFile(dataDir: string): string {
  return path.resolve(dataDir, 'journal', 'revokes.jsonl');
}

/** `live`: the live grants as read at start (server.ts), for the live-grants index. */
export async function setupOutageHandling(ctx: Ctx, db: Db, live: GrantDoc[]): Promise<{ stop(): void }> {
  const journal = await RevokeJournal.open(journalFile(ctx.config.dataDir), (msg, detail) => ctx.log.warn(detail ?? {}, msg));
  const liveGrants = new LiveGrants();
  for (const g of live) liveGrants.note(g._id, g.endpointId, planOf(g));

  // One ping in flight at a time, however many health checks wait on it.
  let inFlight: Promise<void> | null = null;
  const ping = () => {
    inFlight ??= db
      .command({ ping: 1 })
      .then(() => {})
      .finally(() => (inFlight = null));
    return within(inFlight, PING_MS, 'ping');
  };
  attachOutage(ctx, { journal, liveGrants, ping });

  if (journal.size) {
    ctx.log.warn({ entries: journal.size, file: journal.file }, 'revoke journal holds revokes from a database outage: applying them');
    await replayRevokes(ctx);
  }
  const timer = setInterval(() => {
    if (journal.size) replayRevokes(ctx).catch((err: unknown) => ctx.log.error({ err }, 'revoke journal replay failed'));
  }, REPLAY_EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
