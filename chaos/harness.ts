/**
 * The chaos stack: like test/support/stack.ts, but every part can be broken on
 * purpose. FerretDB is started here (so it can be stopped and restarted on the
 * same port while the server keeps its driver), the server can be restarted,
 * SMTP taken down, and agent processes killed or run under libfaketime with a
 * wall clock that can be moved forward while they run.
 */
import { textsAtRest } from '../test/support/atRest.ts';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ServerConfig } from '../server/config.ts';
import { startSmtpServer, type TestSmtpServer } from '../test/support/smtp.ts';
import { OutageStack } from '../test/support/outageStack.ts';
import { enrollSandboxedAgent, spawnAgent, testConfig } from '../test/support/stack.ts';

export const SMTP_USER = 'jit-mailer';
export const SMTP_PASSWORD = 'Chaos-Smtp-Secret-9321';

/** libfaketime, as installed by Debian's `faketime` package. */
export const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) => existsSync(p)) ?? null;

/** The real userdel, which the fault wrapper hands over to once its failures are used up. */
const USERDEL = ['/usr/sbin/userdel', '/sbin/userdel'].find((p) => existsSync(p)) ?? 'userdel';

/**
 * A userdel found first on the agent's PATH: while `userdel-fails` (next to its folder) holds a
 * number above 0, it counts down and fails as userdel does when it cannot lock /etc/group
 * (exit 10), and logs when and for which account. Why a wrapper and not a held lock: with the lock held, userdel retries for 15 s
 * before it fails, so "fails N times" would take minutes. The agent cannot tell the difference.
 */
const FAILING_USERDEL = `#!/bin/sh
f="$(dirname "$0")/../userdel-fails"
n=$(cat "$f" 2>/dev/null || echo 0)
if [ "\${n:-0}" -gt 0 ]; then
  echo $((n - 1)) > "$f"
  for a; do name=$a; done
  echo "$(date +%s%3N) $name" >> "$f.log"
  echo "userdel: cannot lock /etc/group; try again later." >&2
  exit 10
fi
exec ${USERDEL} "$@"
`;

/** How soon a crashed agent is started again. */
const CRASH_RESTART_MS = 1000;

export interface Interval {
  from: number;
  to: number;
}

export class ChaosStack extends OutageStack {
  readonly agents: ChaosAgent[] = [];
  protected override keepEnv = 'CHAOS_KEEP';

  private constructor(
    dir: string,
    config: ServerConfig,
    readonly smtp: TestSmtpServer,
    dbPort: number,
  ) {
    super(dir, config, dbPort);
  }

  static override async start(overrides: Partial<ServerConfig> = {}): Promise<ChaosStack> {
    const { dir, db } = await OutageStack.folderAndDb('jit-chaos-');
    const smtp = await startSmtpServer({ users: { [SMTP_USER]: SMTP_PASSWORD } });
    const config = testConfig(db.uri, dir, { leadTimeSeconds: 1, ...overrides });
    const stack = new ChaosStack(dir, config, smtp, db.port);
    stack.db = db;
    await stack.startServer();
    const policy = (from: string) => ({ host: '127.0.0.1', port: smtp.port, security: 'starttls', username: SMTP_USER, password: SMTP_PASSWORD, from, timeZone: 'UTC', tlsCa: smtp.ca });
    for (const [p, from] of [['/api/v1/agent-settings', 'agent@chaos.example'], ['/api/v1/server-smtp', 'server@chaos.example']] as const) {
      const res = await stack.api.request('PUT', p, policy(from));
      if (res.status !== 200) throw new Error(`PUT ${p}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return stack;
  }

  /** Enrolls an agent on a fresh sandbox root (not started). */
  async enrollAgent(hostname = `chaos-${randomBytes(3).toString('hex')}`): Promise<ChaosAgent> {
    const { root, stateFile, endpointId, cleanup } = await enrollSandboxedAgent(this.api, hostname);
    const agent = new ChaosAgent(root, stateFile, endpointId, hostname, cleanup);
    await agent.prepare();
    this.agents.push(agent);
    return agent;
  }

  override async stop(): Promise<void> {
    for (const a of this.agents) await a.cleanup().catch(() => {});
    await super.stop();
    await this.smtp.stop().catch(() => {});
  }
}

/** A real agent process, run from dist/ as installed; tracks when it was down, and can run with a shifted wall clock. */
export class ChaosAgent {
  private child: ChildProcess | null = null;
  private downSince: number | null = Date.now();
  /** Periods when no agent process was running (from kill to the next start). */
  readonly down: Interval[] = [];
  readonly logFile: string;
  readonly clockFile: string;
  /** Seconds the agent's wall clock runs ahead (0 unless jumped). */
  clockOffset = 0;
  private fakeTime = false;
  /** Exits no fault asked for (a crash): each is a finding, and the agent is started again as its service would be. */
  readonly crashes: { at: number; code: number | null; signal: string | null }[] = [];
  private ending: ChildProcess | null = null;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly root: string,
    readonly stateFile: string,
    readonly endpointId: string,
    readonly hostname: string,
    private readonly removeSandbox: () => Promise<void>,
  ) {
    this.logFile = path.join(root, 'agent.log');
    this.clockFile = path.join(root, 'faketime.rc');
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Runs every later start under libfaketime, with the clock file at +0 for now. */
  async useFakeTime(): Promise<void> {
    if (!LIBFAKETIME) throw new Error('libfaketime not installed (apt-get install -y faketime)');
    await writeFile(this.clockFile, `+${this.clockOffset}s\n`);
    this.fakeTime = true;
  }

  /** Moves the running agent's wall clock forward (the monotonic clock is left alone, as a real NTP step does). */
  async jumpClock(seconds: number): Promise<void> {
    this.clockOffset += seconds;
    await writeFile(this.clockFile, `+${this.clockOffset}s\n`);
  }

  /** Puts the failing userdel first on every later start's PATH. */
  async prepare(): Promise<void> {
    this.pathPrefix = await this.faultBin();
  }

  private pathPrefix = '';

  start(): void {
    if (this.running) return;
    const env: NodeJS.ProcessEnv = { ...process.env, ...(this.pathPrefix ? { PATH: `${this.pathPrefix}:${process.env.PATH}` } : {}) };
    if (this.fakeTime) {
      Object.assign(env, {
        LD_PRELOAD: LIBFAKETIME!,
        FAKETIME_TIMESTAMP_FILE: this.clockFile,
        FAKETIME_NO_CACHE: '1',
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
      });
    }
    const child = spawnAgent(this.stateFile, this.logFile, env, true);
    this.child = child;
    child.once('exit', (code, signal) => this.exited(child, code, signal));
    if (process.env.CHAOS_KEEP_LOGS) void appendFile(this.logFile, `${JSON.stringify({ msg: 'spawned', time: Date.now() })}\n`);
    if (this.downSince !== null) this.down.push({ from: this.downSince, to: Date.now() });
    this.downSince = null;
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child === this.ending || child !== this.child) return;
    this.crashes.push({ at: Date.now(), code, signal });
    this.downSince = Date.now();
    // The systemd unit restarts it 5 s later (agent/service/systemd.ts); sooner here, and counted as downtime.
    this.restartTimer = setTimeout(() => this.start(), CRASH_RESTART_MS);
  }

  /** SIGSTOP: the process hangs (counted as down: it does nothing), until thaw(). */
  freeze(): void {
    if (!this.running || this.downSince !== null) return;
    this.downSince = Date.now();
    this.child!.kill('SIGSTOP');
  }

  thaw(): void {
    if (!this.running || this.downSince === null) return;
    this.child!.kill('SIGCONT');
    this.down.push({ from: this.downSince, to: Date.now() });
    this.downSince = null;
  }

  /** SIGKILL, as a crash. */
  async kill(): Promise<void> {
    const c = this.child;
    clearTimeout(this.restartTimer);
    if (!c || !this.running) return;
    this.downSince = Date.now();
    this.ending = c;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await gone;
  }

  /** Down intervals including an ongoing one (up to now). */
  downIntervals(now = Date.now()): Interval[] {
    return this.downSince === null ? [...this.down] : [...this.down, { from: this.downSince, to: now }];
  }

  log(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  /** The next `n` userdel runs of this agent fail (exit 10), on top of any still to come; no restart. */
  async failDeletes(n: number): Promise<void> {
    const file = path.join(this.root, 'userdel-fails');
    const left = Number((await readFile(file, 'utf8').catch(() => '0')).trim()) || 0;
    await writeFile(file, `${left + n}\n`);
  }

  /** Each userdel made to fail: when (ms since epoch) and the account it was to delete. */
  async deleteFailures(): Promise<{ at: number; account: string }[]> {
    const lines = (await readFile(path.join(this.root, 'userdel-fails.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
    return lines.map((l) => ({ at: Number(l.split(' ')[0]), account: l.split(' ')[1] ?? '' }));
  }

  private async faultBin(): Promise<string> {
    const bin = path.join(this.root, 'fault-bin');
    await mkdir(bin, { recursive: true });
    await writeFile(path.join(bin, 'userdel'), FAILING_USERDEL);
    await chmod(path.join(bin, 'userdel'), 0o755);
    return bin;
  }

  async cleanup(): Promise<void> {
    await this.kill();
    this.downSince = null;
    await this.removeSandbox();
  }
}

/** Searches every collection (the audit trail included), the logs and the agents' state files. */
export async function checkNoPasswords(stack: ChaosStack, agents: ChaosAgent[], passwords: Set<string>, violation: (m: string) => void): Promise<void> {
  for (const { where, text } of await textsAtRest(stack.server!.db, await stack.serverLog(), agents)) {
    for (const p of passwords) if (text.includes(p)) violation(`a generated password appears in the ${where}`);
  }
}
