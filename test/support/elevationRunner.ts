/**
 * A GrantRunner over a backend with a fresh state file and a clock a test can move, and
 * elevate-account plans, for the agent's elevation tests on the recorded OSes.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pino from 'pino';
import { GrantRunner } from '../../agent/accounts.ts';
import type { AccountBackend } from '../../agent/os/backend.ts';
import type { CredentialSink } from '../../agent/sink.ts';
import { StateStore } from '../../agent/state.ts';
import { Plan } from '../../protocol/messages.ts';

export const quietSink: CredentialSink = { deliver: () => {}, isActive: () => false, cancel: () => {}, ended: async () => {}, elevated: async () => {} };

/** `at(ms)` moves the runner's clock to now + ms. */
export async function elevationRunner(dir: string, backend: AccountBackend) {
  let offset = 0;
  const store = await StateStore.create(path.join(dir, 'state.json'), { version: 1, serverUrl: 'http://x', endpointId: 'e', credential: 'c', hostname: 'h', grants: {}, seenInstructions: [], outbox: [] });
  const r = new GrantRunner(store, backend, quietSink, pino({ level: process.env.JIT_TEST_LOG ?? 'silent' }), () => Date.now() + offset);
  return { store, r, at: (ms: number) => void (offset = ms) };
}

/** An elevate-account plan of Administrators for the next hour. */
export function elevationPlan(account: string, extra: Partial<Plan> = {}): Plan {
  return Plan.parse({
    grantId: randomUUID(), operation: 'elevate-account', account, group: 'Administrators', email: 'a@example.com',
    startAt: new Date().toISOString(), enableAt: new Date().toISOString(), endAt: new Date(Date.now() + 3_600_000).toISOString(), serverSideSmtp: false, ...extra,
  });
}
