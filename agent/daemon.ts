/**
 * The agent daemon: due steps and the check against the OS first (offline is fine), then three loops —
 * the long-poll for instructions, the outbox sender and the step timer.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { GrantRunner } from './accounts.ts';
import { ClockWatch } from './clockWatch.ts';
import { InventoryReporter } from './inventory.ts';
import type { AccountBackend } from './os/backend.ts';
import { parseInstructions } from '../protocol/messages.ts';
import type { ServerClient } from './client.ts';
import type { SettingsStore } from './settings.ts';
import type { StateStore } from './state.ts';

/** Re-check the OS for stray managed accounts this often. */
const RECONCILE_EVERY_MS = 60_000;
/**
 * Cap on any timer wait. Why: setTimeout runs on a monotonic clock, so a wall
 * clock that jumps forward would otherwise not be noticed until the old
 * deadline; re-reading the clock every second catches it.
 */
const MAX_SLEEP_MS = 1000;

export interface DaemonOptions {
  pollSeconds: number;
  /** For the inventory of local accounts (inventory.ts); none is reported without it. */
  backend?: AccountBackend;
}

export class Daemon {
  private stopped = new AbortController();
  private wakeSender: () => void = () => {};
  private timer: NodeJS.Timeout | undefined;
  private tasks: Promise<void>[] = [];
  private testsDone = new Set<string>();
  private inventory: InventoryReporter | null = null;
  private readonly clock = new ClockWatch();

  constructor(
    private readonly store: StateStore,
    private readonly runner: GrantRunner,
    private readonly client: ServerClient,
    private readonly settings: SettingsStore,
    private readonly log: Logger,
    private readonly opts: DaemonOptions,
  ) {}

  /**
   * Enforces what is due before talking to the server, so a dead server delays nothing.
   * Due steps first: an access that ended while the agent was down is taken away before the
   * slower look at every account (the check against the OS, then what it found due).
   */
  async start(): Promise<void> {
    await this.runner.runDue();
    await this.runner.reconcile();
    await this.runner.runDue();
    await this.runner.rearmBackstops();
    this.scheduleTick();
    if (this.opts.backend) this.inventory = new InventoryReporter(this.opts.backend, (inv) => this.client.inventory(inv));
    this.tasks = [this.pollLoop(), this.sendLoop(), this.reconcileLoop()];
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    clearTimeout(this.timer);
    this.wakeSender();
    await Promise.allSettled(this.tasks);
    await this.store.save();
  }

  private get running(): boolean {
    return !this.stopped.signal.aborted;
  }

  private scheduleTick(): void {
    if (!this.running) return;
    const next = this.runner.nextDueAt();
    const wait = next === null ? MAX_SLEEP_MS : Math.min(MAX_SLEEP_MS, Math.max(0, next - Date.now()));
    this.timer = setTimeout(() => void this.tick(), wait);
  }

  private async tick(): Promise<void> {
    const gap = this.clock.look();
    if (gap !== 0) {
      // Asleep, or the clock was set: what is due runs below; everything else is looked at now.
      this.log.warn({ gapMs: gap }, 'wall-clock gap (resume from sleep, or the clock was set): checking every grant against the OS now');
      await this.runner.runDue().catch((err) => this.log.error({ err }, 'step pass failed'));
      await this.runner.reconcile().catch((err) => this.log.error({ err }, 'reconcile failed'));
    }
    await this.runner.runDue().catch((err) => this.log.error({ err }, 'step pass failed'));
    if (this.store.state.outbox.length) this.wakeSender();
    this.scheduleTick();
  }

  private async pollLoop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        // Before each poll: at start, and after one that answered (a no-op while nothing changed).
        await this.inventory?.report().catch((err: Error) => this.log.warn({ err: err.message }, 'inventory not reported, will retry'));
        const res = await this.client.poll(this.opts.pollSeconds, this.stopped.signal);
        // Settings first, so credentials for a grant in this batch go out with them.
        if (res.settingsRevision !== this.settings.revision) await this.settings.update(await this.client.settings());
        const { valid, rejected } = parseInstructions(res.instructions);
        for (const ins of valid) await this.runner.accept(ins);
        for (const rej of rejected) await this.runner.reject(rej);
        // Ack only after the plans (and rejections) are on disk: an instruction acked is an
        // instruction kept. A rejected one is acked too, or it would come back on every poll.
        const ids = [...valid.map((i) => i.id), ...rejected.flatMap((r) => (r.id ? [r.id] : []))];
        if (ids.length) {
          await this.client.ack(ids);
          clearTimeout(this.timer);
          await this.tick();
        }
        for (const test of res.smtpTests) await this.runSmtpTest(test);
        failures = 0;
      } catch (err) {
        if (!this.running) return;
        failures += 1;
        this.log.warn({ err: (err as Error).message, failures }, 'server unreachable, retrying');
        await this.sleep(backoff(failures));
      }
    }
  }

  /** "Test these settings" from the console: connect and authenticate with the current policy, and mail `to`. */
  private async runSmtpTest(test: { id: string; to?: string }): Promise<void> {
    if (this.testsDone.has(test.id)) return;
    this.testsDone.add(test.id);
    const smtp = this.settings.smtp();
    // Imported on demand: nodemailer, handlebars and luxon would otherwise sit in every idle agent.
    const { testSmtp } = await import('../mail/smtpTest.ts');
    const result = smtp
      ? await testSmtp(smtp, { sender: this.store.state.hostname, ...(test.to ? { to: test.to } : {}) })
      : { ok: false as const, code: 'invalid_settings', reason: 'no SMTP settings in the Agent Settings policy' };
    await this.client.smtpTestResult(test.id, result);
  }

  private async sendLoop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      const outbox = this.store.state.outbox;
      if (!outbox.length) {
        await new Promise<void>((resolve) => (this.wakeSender = resolve));
        continue;
      }
      try {
        const accepted = new Set(await this.client.report(outbox.slice(0, 100)));
        this.store.state.outbox = this.store.state.outbox.filter((r) => !accepted.has(r.id));
        await this.store.save();
        failures = 0;
      } catch (err) {
        if (!this.running) return;
        failures += 1;
        this.log.warn({ err: (err as Error).message, queued: outbox.length }, 'reports not delivered, will retry');
        await this.sleep(backoff(failures));
      }
    }
  }

  private async reconcileLoop(): Promise<void> {
    while (this.running) {
      await this.sleep(RECONCILE_EVERY_MS);
      if (!this.running) return;
      await this.runner.reconcile().catch((err) => this.log.error({ err }, 'reconcile failed'));
      this.wakeSender();
    }
  }

  private sleep(ms: number): Promise<void> {
    return sleep(ms, undefined, { signal: this.stopped.signal }).catch(() => {});
  }
}

/** 0.5 s, 1 s, 2 s … capped at 15 s, with jitter so a fleet does not reconnect in step. */
function backoff(failures: number): number {
  return Math.min(15_000, 500 * 2 ** (failures - 1)) * (0.75 + Math.random() * 0.5);
}
