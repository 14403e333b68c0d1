/**
 * jit-agent: enroll once, then run as a daemon.
 *
 *   jit-agent enroll --server URL --token TOKEN --state FILE [--sandbox-root DIR] [--hostname NAME]
 *   jit-agent run --state FILE [--poll-seconds N]
 *   jit-agent install --server URL --token TOKEN [--state FILE] [--dry-run]
 *   jit-agent uninstall [--state FILE] [--dry-run]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { GrantRunner } from './accounts.ts';
import { ServerClient, enrollAgent } from './client.ts';
import { machineId } from './machineId.ts';
import { Daemon } from './daemon.ts';
import { EmailDelivery } from './delivery.ts';
import { loadOrCreateKey } from './localKey.ts';
import { SettingsStore } from './settings.ts';
import { backendForThisOs, thisOs } from './os/select.ts';
import { StateStore } from './state.ts';
import { LocalChannel } from './local/channel.ts';
import { localHandler } from './local/handlers.ts';
import { localDir } from '../protocol/localPaths.ts';
import type { AccountBackend } from './os/backend.ts';

export const AGENT_VERSION = '0.1.0';

const USAGE = `usage:
  jit-agent enroll --server URL --token TOKEN --state FILE [--sandbox-root DIR] [--hostname NAME]
  jit-agent run --state FILE [--poll-seconds N]
  jit-agent install --server URL --token TOKEN [--state FILE] [--dry-run]
      as root/Administrator: enroll, copy node and the built agent into a folder only
      root/Administrators can change (/opt/jit-agent, /Library/Application Support/jit-agent/runtime,
      %ProgramFiles%\\jit-agent), then install and start the agent as a service running from there
      (systemd, launchd or a Windows service); --state defaults to the OS's place
  jit-agent uninstall [--state FILE] [--dry-run]
      as root/Administrator: disable, log off, delete and purge every account the agent manages,
      remove the service and its folder, then the marker group, the state file and its key`;

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
      'dry-run': { type: 'boolean' },
    },
    strict: true,
  });
  if (command === 'install') {
    const { server, token } = values;
    if (!server || !token) fail('install needs --server and --token');
    if (values['sandbox-root']) fail('install manages real accounts: --sandbox-root is for enroll (tests and the demo)');
    const dryRun = values['dry-run'] ?? false;
    const enrollInto = (state: string) => enroll({ server, token, state, hostname: values.hostname });
    // The service installers are imported here only: the daemon never needs them.
    const { installAgent } = await import('./service/install.ts');
    await installAgent({ stateFile: values.state, dryRun, serverUrl: server, enroll: enrollInto });
    return;
  }
  if (command === 'uninstall') {
    const { uninstallAgent } = await import('./service/uninstall.ts');
    await uninstallAgent({ stateFile: values.state, dryRun: values['dry-run'] ?? false });
    return;
  }
  if (!values.state) fail('--state is required');
  if (command === 'enroll') {
    if (!values.server || !values.token) fail('enroll needs --server and --token');
    await enroll({ server: values.server, token: values.token, state: values.state, hostname: values.hostname, sandboxRoot: values['sandbox-root'] });
  } else if (command === 'run') {
    const pollSeconds = Number(values['poll-seconds'] ?? 25);
    if (!(pollSeconds > 0 && pollSeconds <= 60)) fail('--poll-seconds must be between 1 and 60');
    await run(values.state, pollSeconds);
  } else fail(`unknown command ${JSON.stringify(command ?? '')}`);
}

/** Enrolls with the server (one-time token) and writes a fresh state file. Used by enroll and install. */
async function enroll(o: { server: string; token: string; state: string; hostname?: string; sandboxRoot?: string }): Promise<void> {
  const serverUrl = o.server.replace(/\/+$/, '');
  const hostname = o.hostname ?? os.hostname();
  const id = await machineId(o.sandboxRoot);
  const { endpointId, credential } = await enrollAgent(serverUrl, { token: o.token, hostname, os: thisOs(), agentVersion: AGENT_VERSION, ...(id ? { machineId: id } : {}) });
  await StateStore.create(o.state, {
    version: 1,
    serverUrl,
    endpointId,
    credential,
    hostname,
    ...(o.sandboxRoot ? { sandboxRoot: o.sandboxRoot } : {}),
    grants: {},
    seenInstructions: [],
    outbox: [],
  });
  process.stdout.write(`enrolled ${hostname} as endpoint ${endpointId}\n`);
}

async function run(stateFile: string, pollSeconds: number): Promise<void> {
  const log = pino({ name: 'jit-agent' });
  log.info({ version: AGENT_VERSION, uptimeMs: Math.round(process.uptime() * 1000) }, 'agent starting');
  const store = await StateStore.load(stateFile);
  const { state } = store;
  const backend = await backendForThisOs(state.sandboxRoot);
  const client = new ServerClient(state.serverUrl, state.credential);
  const settings = new SettingsStore(store, await loadOrCreateKey(stateFile));
  const delivery = new EmailDelivery(settings, client, log, {
    hostname: state.hostname,
    os: thisOs(),
    ...(process.env.JIT_TEMPLATES_DIR ? { templatesDir: process.env.JIT_TEMPLATES_DIR } : {}),
    outcome: (grantId, result) => void runner.deliveryOutcome(grantId, result),
  });
  const runner = new GrantRunner(store, backend, delivery, log);
  const daemon = new Daemon(store, runner, client, settings, log, { pollSeconds, backend });
  await daemon.start();
  const channel = await openLocalChannel(runner, client, backend, state.hostname, state.sandboxRoot, log);
  log.info({ endpointId: state.endpointId, sandbox: state.sandboxRoot ?? null, localSocket: channel?.socketPath ?? null }, 'agent running');
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => void Promise.all([daemon.stop(), channel?.stop()]).then(() => process.exit(0)));
  }
}

/** The `jit` command's channel (Linux and macOS); the agent runs on without it if it cannot be opened. */
async function openLocalChannel(runner: GrantRunner, client: ServerClient, backend: AccountBackend, hostname: string, sandboxRoot: string | undefined, log: pino.Logger): Promise<LocalChannel | null> {
  const e = backend.elevation;
  if (process.platform === 'win32' || !e) return null;
  const accountOf = async (uid: number) => (await e.accounts()).find((a) => a.id === String(uid))?.name ?? null;
  const channel = new LocalChannel(localDir(process.platform, sandboxRoot), localHandler(runner, client, hostname), accountOf, log);
  try {
    await channel.start();
    return channel;
  } catch (err) {
    log.error({ err: (err as Error).message, socket: channel.socketPath }, 'the jit command\'s socket could not be opened; the agent runs on without it');
    return null;
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`jit-agent: ${err.message}\n`);
  process.exit(1);
});
