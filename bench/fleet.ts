/**
 * A child process holding many simulated agents. Each one is the agent's real
 * code (StateStore, SettingsStore, GrantRunner, Daemon, ServerClient over real
 * HTTP) with only the OS backend swapped for RecordingBackend and a credential
 * sink that delivers at once (as a working SMTP server would).
 *
 * Talks to bench/run.ts over IPC: `start` → progress… → `ready`; backend events
 * are sent in batches; `stop` stops every daemon and exits.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { GrantRunner } from '../agent/accounts.ts';
import type { CredentialSink } from '../agent/sink.ts';
import { ServerClient, enrollAgent } from '../agent/client.ts';
import { Daemon } from '../agent/daemon.ts';
import { loadOrCreateKey } from '../agent/localKey.ts';
import { SettingsStore } from '../agent/settings.ts';
import { StateStore, type GrantRecord } from '../agent/state.ts';
import { RecordingBackend, type BackendEvent } from './recordingBackend.ts';

export interface StartMsg {
  type: 'start';
  url: string;
  adminToken: string;
  count: number;
  dir: string;
  prefix: string;
  pollSeconds: number;
  /** Stop enrolling more agents after this time (ms since epoch); the ones enrolled stay. */
  enrollUntil: number;
}

const log = pino({ name: 'bench-agent', level: 'error' }, pino.destination(2));
const daemons: Daemon[] = [];
let events: BackendEvent[] = [];

function send(msg: unknown): void {
  process.send?.(msg);
}

setInterval(() => {
  if (!events.length) return;
  send({ type: 'events', events });
  events = [];
}, 100).unref();

/** Delivers at once, so the runner moves on exactly as with a working SMTP server. */
class InstantSink implements CredentialSink {
  private active = new Set<string>();
  runner!: GrantRunner;
  deliver(grant: GrantRecord): void {
    const id = grant.plan.grantId;
    this.active.add(id);
    setImmediate(() => {
      this.active.delete(id);
      void this.runner.deliveryOutcome(id, { ok: true, via: 'endpoint' });
    });
  }
  isActive(grantId: string): boolean {
    return this.active.has(grantId);
  }
  cancel(grantId: string): void {
    this.active.delete(grantId);
  }
  async ended(): Promise<void> {}
  async elevated(): Promise<void> {}
}

async function adminToken(url: string, token: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`${url}/api/v1/enrollment-tokens`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      const body = (await res.json()) as { token: string };
      if (!res.ok) throw new Error(`enrollment token: HTTP ${res.status}`);
      return body.token;
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

async function startAgent(m: StartMsg, i: number): Promise<{ id: string; hostname: string }> {
  const hostname = `${m.prefix}-${i}`;
  const stateFile = path.join(m.dir, hostname, 'state.json');
  await mkdir(path.dirname(stateFile), { recursive: true, mode: 0o700 });
  const token = await adminToken(m.url, m.adminToken);
  const { endpointId, credential } = await enrollAgent(m.url, { token, hostname, os: 'linux', agentVersion: 'bench' });
  const store = await StateStore.create(stateFile, {
    version: 1,
    serverUrl: m.url,
    endpointId,
    credential,
    hostname,
    grants: {},
    seenInstructions: [],
    outbox: [],
  });
  const backend = new RecordingBackend((e) => events.push(e));
  const client = new ServerClient(m.url, credential);
  const settings = new SettingsStore(store, await loadOrCreateKey(stateFile));
  const sink = new InstantSink();
  const runner = new GrantRunner(store, backend, sink, log);
  sink.runner = runner;
  const daemon = new Daemon(store, runner, client, settings, log, { pollSeconds: m.pollSeconds });
  await daemon.start();
  daemons.push(daemon);
  return { id: endpointId, hostname };
}

async function start(m: StartMsg): Promise<void> {
  const endpoints: { id: string; hostname: string }[] = [];
  let next = 0;
  const CONCURRENCY = 8;
  const worker = async () => {
    while (next < m.count && Date.now() < m.enrollUntil) {
      const i = next++;
      endpoints.push(await startAgent(m, i));
      if (endpoints.length % 100 === 0) send({ type: 'progress', enrolled: endpoints.length });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  send({ type: 'ready', endpoints });
}

process.on('message', (m: StartMsg | { type: 'stop' }) => {
  if (m.type === 'start') {
    start(m).catch((err: Error) => {
      send({ type: 'error', message: err.stack ?? err.message });
    });
  } else if (m.type === 'stop') {
    void Promise.allSettled(daemons.map((d) => d.stop())).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 10_000).unref();
  }
});
process.on('disconnect', () => process.exit(0));
