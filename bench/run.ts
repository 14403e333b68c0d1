/**
 * npm run bench [-- --sizes 100,1000,10000] [--per-process 2000] [--backend-iterations 20]
 *
 * The real server on an embedded FerretDB (its own process), fleets of simulated
 * agents (the agent's real code over real HTTP, only the OS backend recorded in
 * memory) in child processes, one real idle agent (`dist/agent/main.js run`, as
 * the service runs it), and LinuxBackend against bare shadow-utils. Prints a table
 * and writes bench/results.json. Everything listens on 127.0.0.1 and is stopped at the end.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AGENT_NODE_FLAGS } from '../agent/service/install.ts';
import { backendBench, type BackendResult } from './backendBench.ts';
import { installRules, requestProbe, type RequestProbe } from './requests.ts';
import type { StartMsg } from './fleet.ts';
import { childPids, cpuPercent, establishedOn, sample, type ProcSample } from './procstat.ts';
import type { BackendEvent } from './recordingBackend.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const TSX = ['--import', 'tsx'];
/** The built agent, run by plain node with the service's flags, exactly as `jit-agent install` runs it. */
const AGENT = [...AGENT_NODE_FLAGS, path.join(REPO, 'dist', 'agent', 'main.js')];
const LEAD_SECONDS = 3;
/** A grant starts this long after it is requested and lasts GRANT_SECONDS. */
const START_IN_SECONDS = 6;
const GRANT_SECONDS = 6;
/** Deadlines for "sustained without a missed deadline". */
const ENABLE_LATE_MS = 1000;
const REMOVE_LATE_MS = 2000;
const RAMP_PER_MINUTE = [30, 60, 120, 240, 480];
const RAMP_STEP_SECONDS = 15;
const MB = 1024 * 1024;
const API_TIMEOUT_MS = 60_000;

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,1000,10000' },
    'per-process': { type: 'string', default: '2000' },
    'backend-iterations': { type: 'string', default: '20' },
    /** Enrollment time cap per size: a size not reached by then is measured with the agents enrolled. */
    'enroll-seconds': { type: 'string', default: '420' },
    /** Only print the table of the last bench/results.json (targets re-checked). */
    table: { type: 'boolean', default: false },
  },
  strict: true,
});
const sizes = values.sizes.split(',').map((s) => Number(s.trim())).filter((n) => n > 0).sort((a, b) => a - b);
const perProcess = Number(values['per-process']);
const backendIterations = Number(values['backend-iterations']);
const enrollSeconds = Number(values['enroll-seconds']);
if (!sizes.length || !(perProcess > 0)) throw new Error('usage: bench/run.ts [--sizes 100,1000,10000] [--per-process 2000]');

const say = (m: string) => process.stdout.write(`bench: ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Processes we start, and stopping them whatever happens

const children = new Set<ChildProcess>();
let dir = '';
let cleaning: Promise<void> | null = null;

/** Stops every fleet, agent and server process started so far (they exit by themselves on `stop`). */
async function stopAll(): Promise<void> {
  for (const c of children) if (c.connected) c.send({ type: 'stop' });
  const deadline = Date.now() + 20_000;
  while ([...children].some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await sleep(100);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  fleets.length = 0;
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll();
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => {});
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

// ---------------------------------------------------------------------------------------
// Server, fleets, idle agent

interface ServerInfo {
  requesterToken: string;
  url: string;
  port: number;
  adminToken: string;
  pid: number;
  ferretPid: number;
}

async function startServerProcess(name: string): Promise<ServerInfo> {
  const c = track(fork(path.join(REPO, 'bench/serverProc.ts'), [path.join(dir, name), String(LEAD_SECONDS)], { cwd: REPO, execArgv: TSX, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const m = await new Promise<{ url: string; adminToken: string; requesterToken: string; ferretPid: number }>((resolve, reject) => {
    c.once('message', resolve);
    c.once('exit', (code) => reject(new Error(`server process exited ${code}`)));
  });
  return { ...m, port: Number(new URL(m.url).port), pid: c.pid! };
}

interface Fleet {
  proc: ChildProcess;
  endpoints: { id: string; hostname: string }[];
}

const fleets: Fleet[] = [];
let fleetSerial = 0;
const timeline = new Map<string, Partial<Record<BackendEvent['kind'], number>>>();

function onEvents(events: BackendEvent[]): void {
  for (const e of events) {
    const t = timeline.get(e.grantId) ?? {};
    t[e.kind] ??= e.at;
    timeline.set(e.grantId, t);
  }
}

async function startFleet(server: ServerInfo, count: number, n: number, enrollUntil: number): Promise<Fleet> {
  const proc = track(fork(path.join(REPO, 'bench/fleet.ts'), [], { cwd: REPO, execArgv: TSX, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const msg: StartMsg = { type: 'start', url: server.url, adminToken: server.adminToken, count, dir: path.join(dir, 'agents'), prefix: `sim${n}`, pollSeconds: 25, enrollUntil };
  const fleet: Fleet = { proc, endpoints: [] };
  await new Promise<void>((resolve, reject) => {
    proc.on('message', (m: any) => {
      if (m.type === 'events') onEvents(m.events);
      else if (m.type === 'ready') {
        fleet.endpoints = m.endpoints;
        resolve();
      } else if (m.type === 'error') reject(new Error(`fleet ${n}: ${m.message}`));
    });
    proc.once('exit', (code) => reject(new Error(`fleet ${n} exited ${code}`)));
    proc.send(msg);
  });
  return fleet;
}

async function growTo(server: ServerInfo, size: number): Promise<void> {
  const have = fleets.reduce((n, f) => n + f.endpoints.length, 0);
  const missing = size - have;
  if (missing <= 0) return;
  const procs = Math.ceil(missing / perProcess);
  const counts = Array.from({ length: procs }, (_, i) => Math.floor(missing / procs) + (i < missing % procs ? 1 : 0));
  const enrollUntil = Date.now() + enrollSeconds * 1000;
  const started = await Promise.all(counts.map((c) => startFleet(server, c, fleetSerial++, enrollUntil)));
  fleets.push(...started);
}

/** Builds dist/ (npm run build:agent) every run, so the agent measured is the current source. */
async function buildAgent(): Promise<void> {
  say('building the agent (npm run build:agent)…');
  await new Promise<void>((resolve, reject) => {
    const p = track(spawn('npm', ['run', 'build:agent'], { cwd: REPO, stdio: 'inherit' }));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`npm run build:agent exited ${code}`))));
  });
}

function runAgentCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = track(spawn(process.execPath, [...AGENT, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`agent ${args[0]} exited ${code}: ${out}`))));
  });
}

interface IdleResult {
  seconds: number;
  rssMB: number;
  maxRssMB: number;
  cpuPercent: number;
  /** Processes measured: the agent and its children, if any. */
  processes?: number;
}

/** A real agent process (sandbox mode, nothing to do), measured from /proc for a minute after a warm-up. */
async function idleAgent(server: ServerInfo): Promise<IdleResult> {
  const { makeSandboxRoot } = await import('../agent/os/sandboxRoot.ts');
  const sandbox = await makeSandboxRoot();
  try {
    const stateFile = path.join(sandbox.root, 'agent', 'state.json');
    const res = await fetch(`${server.url}/api/v1/enrollment-tokens`, { method: 'POST', headers: { authorization: `Bearer ${server.adminToken}` } });
    const { token } = (await res.json()) as { token: string };
    await runAgentCli(['enroll', '--server', server.url, '--token', token, '--state', stateFile, '--sandbox-root', sandbox.root, '--hostname', 'idle-agent']);
    const p = track(spawn(process.execPath, [...AGENT, 'run', '--state', stateFile, '--poll-seconds', '25'], { cwd: REPO, stdio: 'ignore' }));
    await sleep(10_000);
    // The agent's whole process tree (plain node on prebuilt JavaScript starts no helper process).
    const tree = () => treeSample(p.pid!);
    const first = tree()!;
    let maxRss = first.rss;
    let last = first;
    for (let i = 0; i < 60; i++) {
      await sleep(1000);
      last = tree() ?? last;
      maxRss = Math.max(maxRss, last.rss);
    }
    const processes = 1 + childPids(p.pid!).length;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
    return { seconds: (last.at - first.at) / 1000, rssMB: last.rss / MB, maxRssMB: maxRss / MB, cpuPercent: cpuPercent(first, last), processes };
  } finally {
    await sandbox.cleanup();
  }
}

// ---------------------------------------------------------------------------------------
// Sampling

/** RSS and CPU time of a process and its descendants, summed. */
function treeSample(pid: number): ProcSample | null {
  const root = sample(pid);
  if (!root) return null;
  for (const kid of childPids(pid)) {
    const k = sample(kid);
    if (k) {
      root.rss += k.rss;
      root.cpu += k.cpu;
    }
  }
  return root;
}

class Sampler {
  private first = new Map<number, ProcSample>();
  private last = new Map<number, ProcSample>();
  private maxRss = new Map<number, number>();
  private timer: NodeJS.Timeout;

  constructor(private readonly pids: () => number[]) {
    this.take();
    this.timer = setInterval(() => this.take(), 500);
  }

  private take(): void {
    for (const pid of this.pids()) {
      const s = sample(pid);
      if (!s) continue;
      if (!this.first.has(pid)) this.first.set(pid, s);
      this.last.set(pid, s);
      this.maxRss.set(pid, Math.max(this.maxRss.get(pid) ?? 0, s.rss));
    }
  }

  stop(): { rssMB: number; maxRssMB: number; cpuPercent: number } {
    clearInterval(this.timer);
    this.take();
    let rss = 0;
    let max = 0;
    let cpu = 0;
    for (const [pid, a] of this.first) {
      const b = this.last.get(pid)!;
      rss += b.rss;
      max += this.maxRss.get(pid)!;
      cpu += cpuPercent(a, b);
    }
    return { rssMB: rss / MB, maxRssMB: max / MB, cpuPercent: cpu };
  }
}

// ---------------------------------------------------------------------------------------
// Grants

interface SentGrant {
  id: string;
  sentAt: number;
  /**
   * When the server stored the grant (its createdAt; same machine, same clock): "API accepted".
   * Not when the 201 arrived: the agent is told before the server schedules its backstop jobs
   * and answers, so an account can exist before the answer does.
   */
  acceptedAt: number;
  answeredAt: number;
  enableAt: number;
  endAt: number;
}

async function createGrant(server: ServerInfo, endpointId: string): Promise<SentGrant | null> {
  const sentAt = Date.now();
  const start = sentAt + START_IN_SECONDS * 1000;
  const body = {
    operation: 'temporary-access',
    email: 'bench@example.com',
    endpoints: [endpointId],
    group: 'Administrators',
    startAt: new Date(start).toISOString(),
    endAt: new Date(start + GRANT_SECONDS * 1000).toISOString(),
    serverSideSmtp: false,
  };
  try {
    const res = await fetch(`${server.url}/api/v1/grants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      // An answer later than this counts as a failed request (the run stays bounded).
      signal: AbortSignal.timeout(API_TIMEOUT_MS),
    });
    const answeredAt = Date.now();
    const json = (await res.json()) as { grants: { id: string; createdAt: string; enableAt: string; endAt: string }[] };
    if (res.status !== 201) return null;
    const g = json.grants[0]!;
    return { id: g.id, sentAt, acceptedAt: Date.parse(g.createdAt), answeredAt, enableAt: Date.parse(g.enableAt), endAt: Date.parse(g.endAt) };
  } catch {
    return null;
  }
}

/** Open loop: `count` grants at `perSecond`, each on a random fleet endpoint. */
async function sendGrants(server: ServerInfo, count: number, perSecond: number): Promise<{ sent: SentGrant[]; failed: number }> {
  const endpoints = fleets.flatMap((f) => f.endpoints);
  const t0 = Date.now();
  const pending: Promise<SentGrant | null>[] = [];
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / perSecond;
    if (due > Date.now()) await sleep(due - Date.now());
    pending.push(createGrant(server, endpoints[Math.floor(Math.random() * endpoints.length)]!.id));
  }
  const all = await Promise.all(pending);
  return { sent: all.filter((g): g is SentGrant => g !== null), failed: all.filter((g) => g === null).length };
}

/** Waits until every grant's account was deleted, or until 20 s after the last end. */
async function settle(grants: SentGrant[]): Promise<void> {
  const until = Math.max(Date.now(), ...grants.map((g) => g.endAt)) + 20_000;
  while (Date.now() < until && grants.some((g) => timeline.get(g.id)?.deleted === undefined)) await sleep(250);
  await sleep(300); // last event batch
}

function pct(xs: number[], p: number): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

interface Latencies {
  grants: number;
  apiFailed: number;
  incomplete: number;
  apiMs: { p50: number | null; p99: number | null };
  propagationMs: { p50: number | null; p95: number | null; p99: number | null };
  enableLateMs: { p50: number | null; p99: number | null };
  revokeLateMs: { p50: number | null; p99: number | null };
  missedDeadlines: number;
}

function latencies(sent: SentGrant[], failed: number): Latencies {
  const prop: number[] = [];
  const en: number[] = [];
  const rm: number[] = [];
  const api: number[] = [];
  let incomplete = 0;
  let missed = failed;
  for (const g of sent) {
    const t = timeline.get(g.id) ?? {};
    api.push(g.answeredAt - g.sentAt);
    if (t.created !== undefined) prop.push(t.created - g.acceptedAt);
    if (t.enabled !== undefined) en.push(t.enabled - g.enableAt);
    if (t.deleted !== undefined) rm.push(t.deleted - g.endAt);
    if (t.created === undefined || t.enabled === undefined || t.deleted === undefined) incomplete++;
    const late =
      t.created === undefined || t.created > g.enableAt ||
      t.enabled === undefined || t.enabled - g.enableAt > ENABLE_LATE_MS ||
      t.deleted === undefined || t.deleted - g.endAt > REMOVE_LATE_MS;
    if (late) missed++;
  }
  return {
    grants: sent.length,
    apiFailed: failed,
    incomplete,
    apiMs: { p50: pct(api, 50), p99: pct(api, 99) },
    propagationMs: { p50: pct(prop, 50), p95: pct(prop, 95), p99: pct(prop, 99) },
    enableLateMs: { p50: pct(en, 50), p99: pct(en, 99) },
    revokeLateMs: { p50: pct(rm, 50), p99: pct(rm, 99) },
    missedDeadlines: missed,
  };
}

// ---------------------------------------------------------------------------------------
// One fleet size

interface ProcFigures {
  rssMB: number;
  maxRssMB: number;
  cpuPercent: number;
}

interface SizeResult {
  /** When the run that measured this size started. */
  measuredAt?: string;
  agents: number;
  /** Agents actually enrolled and running (fewer than `agents` when the enrollment time cap hit). */
  enrolled: number;
  connected: number;
  fleetProcesses: number;
  enrollSeconds: number;
  idle: { seconds: number; server: ProcFigures; ferretdb: ProcFigures; fleet: ProcFigures };
  load: { seconds: number; server: ProcFigures; ferretdb: ProcFigures; fleet: ProcFigures };
  probe: Latencies & { perSecond: number };
  /** Requests auto-approved by a rule: filed → account enabled on the agent (bench/requests.ts). */
  requests?: RequestProbe;
  ramp: { perMinute: number; grants: number; missedDeadlines: number; propagationP99Ms: number | null; revokeLateP99Ms: number | null }[];
  sustainedPerMinute: number | null;
}

async function runSize(server: ServerInfo, size: number): Promise<SizeResult> {
  const t0 = Date.now();
  say(`enrolling and starting ${size} agents in ${Math.ceil(size / perProcess)} process(es)…`);
  await growTo(server, size);
  const enrollTook = (Date.now() - t0) / 1000;
  const enrolled = fleets.reduce((n, f) => n + f.endpoints.length, 0);
  const fleetPids = () => fleets.map((f) => f.proc.pid!);
  // Wait until every agent holds a long-poll (the idle agent's adds one).
  const until = Date.now() + 60_000;
  while (establishedOn(server.port) < enrolled && Date.now() < until) await sleep(500);
  const connected = establishedOn(server.port);
  if (enrolled < size) say(`enrollment time cap (${enrollSeconds} s) reached: ${enrolled} of ${size} agents enrolled`);
  say(`${enrolled} agents enrolled in ${enrollTook.toFixed(0)} s; ${connected} connections open on the server`);

  const holdSeconds = size >= 10_000 ? 30 : 10;
  let samplers = [new Sampler(() => [server.pid]), new Sampler(() => [server.ferretPid]), new Sampler(fleetPids)];
  await sleep(holdSeconds * 1000);
  const [idleServer, idleFerret, idleFleet] = samplers.map((s) => s.stop()) as [ProcFigures, ProcFigures, ProcFigures];
  say(`idle hold ${holdSeconds} s: server RSS ${idleServer.rssMB.toFixed(0)} MB, CPU ${idleServer.cpuPercent.toFixed(1)} %`);

  const loadStart = Date.now();
  samplers = [new Sampler(() => [server.pid]), new Sampler(() => [server.ferretPid]), new Sampler(fleetPids)];
  const probeCount = size >= 10_000 ? 30 : 100;
  const perSecond = size >= 10_000 ? 1 : 2;
  say(`latency probe: ${probeCount} grants at ${perSecond}/s…`);
  const probe = await sendGrants(server, probeCount, perSecond);
  await settle(probe.sent);
  const probeLat = latencies(probe.sent, probe.failed);
  const requestCount = size >= 10_000 ? 30 : 100;
  say(`request probe: ${requestCount} requests at ${perSecond}/s, auto-approved by a rule…`);
  await installRules(server);
  const endpoints = fleets.flatMap((f) => f.endpoints.map((e) => e.id));
  const requests = await requestProbe(server, endpoints, requestCount, perSecond, (id) => timeline.get(id)?.enabled, pct);
  if (requests.failed) say(`requests failed: ${JSON.stringify(requests.failures)}`);

  const ramp: SizeResult['ramp'] = [];
  if (size < 10_000) {
    const steps: { perMinute: number; sent: SentGrant[]; failed: number }[] = [];
    for (const perMinute of RAMP_PER_MINUTE) {
      say(`ramp: ${perMinute} grants/min for ${RAMP_STEP_SECONDS} s…`);
      const r = await sendGrants(server, Math.round((perMinute / 60) * RAMP_STEP_SECONDS), perMinute / 60);
      steps.push({ perMinute, ...r });
      // Stop climbing once a step is clearly saturated (the API fell behind by a step's length).
      if (r.failed > 0 || r.sent.some((g) => g.answeredAt - g.sentAt > RAMP_STEP_SECONDS * 1000)) break;
    }
    await settle(steps.flatMap((s) => s.sent));
    for (const s of steps) {
      const l = latencies(s.sent, s.failed);
      ramp.push({ perMinute: s.perMinute, grants: s.sent.length + s.failed, missedDeadlines: l.missedDeadlines, propagationP99Ms: l.propagationMs.p99, revokeLateP99Ms: l.revokeLateMs.p99 });
    }
  }
  const [loadServer, loadFerret, loadFleet] = samplers.map((s) => s.stop()) as [ProcFigures, ProcFigures, ProcFigures];
  let sustained: number | null = null;
  for (const r of ramp) {
    if (r.missedDeadlines > 0) break;
    sustained = r.perMinute;
  }
  return {
    agents: size,
    enrolled,
    connected,
    fleetProcesses: fleets.length,
    enrollSeconds: enrollTook,
    idle: { seconds: holdSeconds, server: idleServer, ferretdb: idleFerret, fleet: idleFleet },
    load: { seconds: (Date.now() - loadStart) / 1000, server: loadServer, ferretdb: loadFerret, fleet: loadFleet },
    probe: { ...probeLat, perSecond },
    requests,
    ramp,
    sustainedPerMinute: sustained,
  };
}

// ---------------------------------------------------------------------------------------
// Output

const f0 = (n: number | null | undefined) => (n === null || n === undefined ? '—' : n.toFixed(0));
const f1 = (n: number | null | undefined) => (n === null || n === undefined ? '—' : n.toFixed(1));

function table(results: SizeResult[], idle: IdleResult | null, backend: BackendResult | null): string {
  const rows: [string, (r: SizeResult) => string][] = [
    ['agents enrolled (enroll time s)', (r) => `${r.enrolled ?? r.agents} (${f0(r.enrollSeconds)})`],
    ['server connections open', (r) => String(r.connected)],
    ['fleet processes', (r) => String(r.fleetProcesses)],
    ['probe grants (API failures)', (r) => `${r.probe.grants} (${r.probe.apiFailed})`],
    ['propagation p50/p95/p99 ms', (r) => `${f0(r.probe.propagationMs.p50)} / ${f0(r.probe.propagationMs.p95)} / ${f0(r.probe.propagationMs.p99)}`],
    ['API accept p50/p99 ms', (r) => `${f0(r.probe.apiMs.p50)} / ${f0(r.probe.apiMs.p99)}`],
    ['enable lateness p50/p99 ms', (r) => `${f0(r.probe.enableLateMs.p50)} / ${f0(r.probe.enableLateMs.p99)}`],
    ['revocation lateness p50/p99 ms', (r) => `${f0(r.probe.revokeLateMs.p50)} / ${f0(r.probe.revokeLateMs.p99)}`],
    ['probe grants never completed', (r) => String(r.probe.incomplete)],
    ['requests (failed, never enabled)', (r) => (r.requests ? `${r.requests.requests} (${r.requests.failed}, ${r.requests.notEnabled})` : '—')],
    ['request filed → enabled p50/p99 ms', (r) => (r.requests ? `${f0(r.requests.filedToEnabledMs.p50)} / ${f0(r.requests.filedToEnabledMs.p99)}` : '—')],
    ['request API accept p50/p99 ms', (r) => (r.requests ? `${f0(r.requests.apiMs.p50)} / ${f0(r.requests.apiMs.p99)}` : '—')],
    ['probe deadlines missed', (r) => String(r.probe.missedDeadlines)],
    ['sustained grants/min (no miss)', (r) => (r.ramp.length ? (r.sustainedPerMinute === null ? `< ${r.ramp[0]!.perMinute}` : `≥ ${r.sustainedPerMinute}`) : 'not ramped')],
    ['ramp misses per step', (r) => (r.ramp.length ? r.ramp.map((s) => `${s.perMinute}:${s.missedDeadlines}`).join(' ') : '—')],
    ['server RSS idle / load MB', (r) => `${f0(r.idle.server.rssMB)} / ${f0(r.load.server.maxRssMB)}`],
    ['server CPU idle / load % core', (r) => `${f1(r.idle.server.cpuPercent)} / ${f1(r.load.server.cpuPercent)}`],
    ['FerretDB RSS MB, CPU idle/load %', (r) => `${f0(r.load.ferretdb.maxRssMB)}, ${f1(r.idle.ferretdb.cpuPercent)} / ${f1(r.load.ferretdb.cpuPercent)}`],
    ['fleet RSS MB, CPU idle/load %', (r) => `${f0(r.load.fleet.maxRssMB)}, ${f1(r.idle.fleet.cpuPercent)} / ${f1(r.load.fleet.cpuPercent)}`],
  ];
  const head = ['agents', ...results.map((r) => String(r.agents))];
  const body = rows.map(([label, fn]) => [label, ...results.map(fn)]);
  const widths = head.map((_, i) => Math.max(...[head, ...body].map((row) => row[i]!.length)));
  const line = (row: string[]) => `| ${row.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const out = [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)];
  if (idle) out.push('', `idle agent (real agent process, ${f0(idle.seconds)} s): RSS ${f1(idle.rssMB)} MB (max ${f1(idle.maxRssMB)}), CPU ${idle.cpuPercent.toFixed(2)} % of a core`);
  if (backend) {
    out.push(`Linux backend create+enable+delete, median of ${backend.iterations}: LinuxBackend ${f1(backend.backendMedianMs)} ms, bare shadow-utils ${f1(backend.bareMedianMs)} ms, ratio ${backend.ratio.toFixed(2)}`);
  }
  return out.join('\n');
}

function targets(results: SizeResult[], idle: IdleResult | null, backend: BackendResult | null) {
  const at1k = results.find((r) => r.agents === 1000);
  const at10k = results.find((r) => r.agents === 10_000);
  const check = (value: number | null | undefined, limit: number) => (value === null || value === undefined ? null : value <= limit);
  return {
    // A percentile over the grants that made it says nothing if some never did.
    propagationP99At1000Under1s: at1k && (at1k.probe.incomplete > 0 || at1k.probe.apiFailed > 0) ? false : check(at1k?.probe.propagationMs.p99, 1000),
    revocationLateP99At1000Under2s: at1k && (at1k.probe.incomplete > 0 || at1k.probe.apiFailed > 0) ? false : check(at1k?.probe.revokeLateMs.p99, 2000),
    server10000Under1GiB: at10k ? at10k.enrolled >= 10_000 && Math.max(at10k.idle.server.maxRssMB, at10k.load.server.maxRssMB) < 1024 : null,
    requestToEnabledP99At1000Under1s: at1k?.requests ? at1k.requests.failed === 0 && at1k.requests.notEnabled === 0 && (at1k.requests.filedToEnabledMs.p99 ?? Infinity) <= 1000 : null,
    idleAgentUnder60MB: idle ? idle.maxRssMB < 60 : null,
    idleAgentNearZeroCpu: idle ? idle.cpuPercent < 1 : null,
    backendRatioUnder1_3: backend ? backend.ratio <= 1.3 : null,
  };
}

// ---------------------------------------------------------------------------------------

/**
 * Writes bench/results.json (after every size, so a cut-short run keeps what it measured).
 * Sizes, idle agent and backend figures from an earlier run that this one did not measure are
 * kept (e.g. `--sizes 10000` after `--sizes 100,1000`); each size says when it was measured.
 */
async function writeResults(started: Date, results: SizeResult[], idle: IdleResult | null, backend: BackendResult | null) {
  const file = path.join(REPO, 'bench/results.json');
  const previous = await readFile(file, 'utf8').then(
    (t) => JSON.parse(t) as { sizes?: SizeResult[]; idleAgent?: IdleResult | null; linuxBackend?: BackendResult | null },
    () => ({}) as { sizes?: SizeResult[]; idleAgent?: IdleResult | null; linuxBackend?: BackendResult | null },
  );
  for (const r of results) r.measuredAt ??= started.toISOString();
  const all = [...results, ...(previous.sizes ?? []).filter((p) => !results.some((r) => r.agents === p.agents))].sort((a, b) => a.agents - b.agents);
  const idleAgent = idle ?? previous.idleAgent ?? null;
  const linuxBackend = backend ?? previous.linuxBackend ?? null;
  const out = {
    startedAt: started.toISOString(),
    writtenAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, totalMemBytes: os.totalmem(), cpuModel: os.cpus()[0]?.model ?? '', node: process.version },
    settings: { leadTimeSeconds: LEAD_SECONDS, longPollSeconds: 25, startInSeconds: START_IN_SECONDS, grantSeconds: GRANT_SECONDS, enableDeadlineMs: ENABLE_LATE_MS, removeDeadlineMs: REMOVE_LATE_MS, rampPerMinute: RAMP_PER_MINUTE, rampStepSeconds: RAMP_STEP_SECONDS, agentsPerProcess: perProcess, apiTimeoutMs: API_TIMEOUT_MS },
    sizes: all,
    idleAgent,
    linuxBackend,
    targets: targets(all, idleAgent, linuxBackend),
  };
  await writeFile(file, `${JSON.stringify(out, null, 2)}\n`);
  return { out, all };
}

async function main(): Promise<void> {
  const started = new Date();
  say('preparing FerretDB (scripts/prepare.ts)…');
  await new Promise<void>((resolve, reject) => {
    const p = track(spawn(process.execPath, [...TSX, 'scripts/prepare.ts'], { cwd: REPO, stdio: 'inherit' }));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`prepare exited ${code}`))));
  });
  await buildAgent();
  dir = await mkdtemp(path.join(os.tmpdir(), 'jit-bench-'));

  say(`Linux backend vs shadow-utils, ${backendIterations} iterations each…`);
  const backend = await backendBench(backendIterations).catch((err: Error) => {
    say(`backend comparison skipped: ${err.message}`);
    return null;
  });

  // A fresh server and database for every size, so one size's history does not weigh on the next.
  const results: SizeResult[] = [];
  let idle: IdleResult | null = null;
  for (const [i, size] of sizes.entries()) {
    const server = await startServerProcess(`size-${size}`);
    say(`server ${server.url} (pid ${server.pid}, FerretDB pid ${server.ferretPid})`);
    const idlePromise =
      i === 0
        ? idleAgent(server).catch((err: Error) => {
            say(`idle agent failed: ${err.message}`);
            return null;
          })
        : null;
    results.push(await runSize(server, size));
    if (idlePromise) {
      say('waiting for the idle agent measurement…');
      idle = await idlePromise;
    }
    await stopAll();
    await writeResults(started, results, idle, backend);
  }

  const { out, all } = await writeResults(started, results, idle, backend);
  process.stdout.write(`\n${table(all, out.idleAgent, out.linuxBackend)}\n\ntargets: ${JSON.stringify(out.targets)}\n`);
  process.stdout.write(`machine: ${out.machine.cpus} cores, ${(out.machine.totalMemBytes / 1024 ** 3).toFixed(1)} GiB; figures in bench/results.json\n`);
}

if (values.table) {
  const saved = JSON.parse(await readFile(path.join(REPO, 'bench/results.json'), 'utf8')) as { sizes: SizeResult[]; idleAgent: IdleResult | null; linuxBackend: BackendResult | null };
  process.stdout.write(`${table(saved.sizes, saved.idleAgent, saved.linuxBackend)}\n\ntargets: ${JSON.stringify(targets(saved.sizes, saved.idleAgent, saved.linuxBackend))}\n`);
  process.exit(0);
}

const guard = setTimeout(() => {
  say('time limit (40 min) reached, stopping (bench/results.json has the sizes finished so far)');
  void cleanup().then(() => process.exit(1));
}, 40 * 60_000);
guard.unref();

main()
  .then(() => cleanup())
  .then(() => process.exit(0))
  .catch(async (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    await cleanup();
    process.exit(1);
  });
