/**
 * The real thing, for tests: FerretDB on a throwaway folder, the server on a
 * free loopback port, and real agent processes on sandbox roots.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { defaultConfig, type ServerConfig } from '../../server/config.ts';
import { startFerretDB } from '../../server/db/ferret.ts';
import { startServer, type RunningServer } from '../../server/server.ts';
import { killBackstops } from './accounts.ts';
import { makeSandboxRoot } from '../../agent/os/sandboxRoot.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface Stack {
  config: ServerConfig;
  server: RunningServer | null;
  api: Api;
  startServer(): Promise<void>;
  stopServer(): Promise<void>;
  stop(): Promise<void>;
  /** Text of the server log so far. */
  serverLog(): Promise<string>;
}

export async function startStack(overrides: Partial<ServerConfig> = {}): Promise<Stack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'jit-stack-'));
  const db = await startFerretDB({ dataDir: path.join(dir, 'db') });
  const logFile = path.join(dir, 'server.log');
  const logStream = createWriteStream(logFile, { flags: 'a' });
  const config = testConfig(db.uri, dir, overrides);
  const stack: Stack = {
    config,
    server: null,
    api: new Api(''),
    async startServer() {
      stack.server = await startServer({ ...config }, pino({ level: 'debug' }, logStream));
      // Keep the port across restarts, so agents find the server again.
      config.port = Number(new URL(stack.server.url).port);
      stack.api.url = stack.server.url;
    },
    async stopServer() {
      await stack.server?.stop();
      stack.server = null;
    },
    async stop() {
      await stack.stopServer();
      await db.stop();
      logStream.end();
      await rm(dir, { recursive: true, force: true });
    },
    serverLog: () => readFile(logFile, 'utf8'),
  };
  await stack.startServer();
  return stack;
}

/**
 * Server settings for a test run: loopback, a free port, the database `jit` on
 * `dbUri`, short lead time, fast scheduler polls and a fresh secret key.
 */
export function testConfig(dbUri: string, dir: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  return {
    ...defaultConfig(),
    host: '127.0.0.1',
    port: 0,
    mongodbUri: `${dbUri.replace(/\/?$/, '/')}jit`,
    dataDir: dir,
    adminToken: ADMIN_TOKEN,
    leadTimeSeconds: 2,
    verifyGraceSeconds: 4,
    schedulerProcessEvery: 200,
    longPollSeconds: 5,
    secretKey: randomBytes(32).toString('hex'),
    ...overrides,
  };
}

/** The admin API over real HTTP. */
export class Api {
  constructor(public url: string) {}

  async request(method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.url}${p}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async grant(id: string): Promise<any> {
    return (await this.request('GET', `/api/v1/grants/${id}`)).body;
  }

  /** Polls a grant until `pred` holds, or fails after `ms`. */
  async waitGrant(id: string, pred: (g: any) => boolean, ms = 30_000): Promise<any> {
    const until = Date.now() + ms;
    for (;;) {
      const g = await this.grant(id);
      if (pred(g)) return g;
      if (Date.now() > until) throw new Error(`grant ${id} never matched; last: ${JSON.stringify({ state: g.state, timeline: g.timeline?.map((e: any) => e.type) })}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface AgentProc {
  root: string;
  stateFile: string;
  endpointId: string;
  hostname: string;
  start(): void;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  log(): Promise<string>;
  cleanup(): Promise<void>;
}

/** Enrolls a real agent process on a fresh sandbox root (not started yet). */
export async function enrollAgent(stack: Stack, hostname = `host-${Math.random().toString(36).slice(2, 8)}`): Promise<AgentProc> {
  const { root, stateFile, endpointId, cleanup } = await enrollSandboxedAgent(stack.api, hostname);
  const logFile = path.join(root, 'agent.log');
  let child: ChildProcess | null = null;
  const exited = () => new Promise<void>((r) => (child && child.exitCode === null && child.signalCode === null ? child.once('exit', () => r()) : r()));
  const agent: AgentProc = {
    root,
    stateFile,
    endpointId,
    hostname,
    start() {
      child = spawnAgent(stateFile, logFile);
    },
    async kill() {
      child?.kill('SIGKILL');
      await exited();
    },
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    async cleanup() {
      await agent.kill();
      await cleanup();
    },
  };
  return agent;
}

/**
 * Makes a sandbox root and enrolls an agent there with a fresh enrollment token from
 * the server behind `api`; returns the state file, the endpoint id and the root's cleanup.
 */
export async function enrollSandboxedAgent(api: Api, hostname: string): Promise<{ root: string; stateFile: string; endpointId: string; cleanup(): Promise<void> }> {
  const sandbox = await makeSandboxRoot();
  const stateFile = path.join(sandbox.root, 'agent', 'state.json');
  const { body } = await api.request('POST', '/api/v1/enrollment-tokens');
  await runAgentToEnd(['enroll', '--server', api.url, '--token', body.token, '--state', stateFile, '--sandbox-root', sandbox.root, '--hostname', hostname]);
  const state = JSON.parse(await readFile(stateFile, 'utf8'));
  const cleanup = async () => {
    await killBackstops(sandbox.root);
    await sandbox.cleanup();
  };
  return { root: sandbox.root, stateFile, endpointId: state.endpointId, cleanup };
}

/**
 * Starts `agent run` on `stateFile` (5 s polls), its stdout and stderr appended to `logFile`.
 * `built`: from dist/ (`npm run build:agent`), as the installed service runs it: it starts in about
 * 0.3 s where tsx compiling the sources takes 0.6 s, which counts when a start's delay is measured.
 */
export function spawnAgent(stateFile: string, logFile: string, env: NodeJS.ProcessEnv = process.env, built = false): ChildProcess {
  const out = createWriteStream(logFile, { flags: 'a' });
  const entry = built ? ['dist/agent/main.js'] : ['--import', 'tsx', 'agent/main.ts'];
  const child = spawn(process.execPath, [...entry, 'run', '--state', stateFile, '--poll-seconds', '5'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

/** Runs an agent command (`enroll`, ...) to its end; rejects with its stderr unless it exits 0. */
function runAgentToEnd(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`agent ${args[0]} exited ${code}: ${err}`))));
  });
}

/** A grant request body starting `startIn` s from now and lasting `seconds`. */
export function grantBody(endpoint: string, startIn: number, seconds: number, extra: Record<string, unknown> = {}) {
  const start = Date.now() + startIn * 1000;
  return {
    operation: 'temporary-access',
    email: 'alice@example.com',
    endpoints: [endpoint],
    group: 'Administrators',
    startAt: new Date(start).toISOString(),
    endAt: new Date(start + seconds * 1000).toISOString(),
    serverSideSmtp: false,
    ...extra,
  };
}
