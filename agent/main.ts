/**
 * jit-agent: enroll once, then run as a daemon.
 *
 *   jit-agent enroll --server URL --token TOKEN --state FILE [--sandbox-root DIR] [--hostname NAME]
 *   jit-agent run --state FILE [--poll-seconds N]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { GrantRunner } from './accounts.ts';
import { ServerClient, enrollAgent } from './client.ts';
import { Daemon } from './daemon.ts';
import { EmailDelivery } from './delivery.ts';
import { loadOrCreateKey } from './localKey.ts';
import { SettingsStore } from './settings.ts';
import { backendForThisOs, thisOs } from './os/select.ts';
import { StateStore } from './state.ts';

export const AGENT_VERSION = '0.1.0';

const USAGE = `usage:
  jit-agent enroll --server URL --token TOKEN --state FILE [--sandbox-root DIR] [--hostname NAME]
  jit-agent run --state FILE [--poll-seconds N]`;

function fail(message: string): never {
  process.stderr.write(`jit-agent: ${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      state: { type: 'string' },
      'sandbox-root': { type: 'string' },
      hostname: { type: 'string' },
      'poll-seconds': { type: 'string' },
    },
    strict: true,
  });
  if (!values.state) fail('--state is required');
  if (command === 'enroll') {
    if (!values.server || !values.token) fail('enroll needs --server and --token');
    const serverUrl = values.server.replace(/\/+$/, '');
    const hostname = values.hostname ?? os.hostname();
    const { endpointId, credential } = await enrollAgent(serverUrl, { token: values.token, hostname, os: thisOs(), agentVersion: AGENT_VERSION });
    await StateStore.create(values.state, {
      version: 1,
      serverUrl,
      endpointId,
      credential,
      hostname,
      ...(values['sandbox-root'] ? { sandboxRoot: values['sandbox-root'] } : {}),
      grants: {},
      seenInstructions: [],
      outbox: [],
    });
    process.stdout.write(`enrolled ${hostname} as endpoint ${endpointId}\n`);
  } else if (command === 'run') {
    const pollSeconds = Number(values['poll-seconds'] ?? 25);
    if (!(pollSeconds > 0 && pollSeconds <= 60)) fail('--poll-seconds must be between 1 and 60');
    await run(values.state, pollSeconds);
  } else fail(`unknown command ${JSON.stringify(command ?? '')}`);
}

async function run(stateFile: string, pollSeconds: number): Promise<void> {
  const log = pino({ name: 'jit-agent' });
  const store = await StateStore.load(stateFile);
  const { state } = store;
  const backend = backendForThisOs(state.sandboxRoot);
  const client = new ServerClient(state.serverUrl, state.credential);
  const settings = new SettingsStore(store, await loadOrCreateKey(stateFile));
  const delivery = new EmailDelivery(settings, client, log, {
    hostname: state.hostname,
    os: thisOs(),
    ...(process.env.JIT_TEMPLATES_DIR ? { templatesDir: process.env.JIT_TEMPLATES_DIR } : {}),
    outcome: (grantId, result) => void runner.deliveryOutcome(grantId, result),
  });
  const runner = new GrantRunner(store, backend, delivery, log);
  const daemon = new Daemon(store, runner, client, settings, log, { pollSeconds });
  await daemon.start();
  log.info({ endpointId: state.endpointId, sandbox: state.sandboxRoot ?? null }, 'agent running');
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => void daemon.stop().then(() => process.exit(0)));
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`jit-agent: ${err.message}\n`);
  process.exit(1);
});
