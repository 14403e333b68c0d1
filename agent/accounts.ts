/**
 * The policy layer: decides, from each grant's plan and the clock, which
 * account primitive is due, and records every step before and after it runs.
 * It works without the server: reports wait in the outbox.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { backoffMs } from '../mail/retryLoops.ts';
import { grantIdOf, type Instruction, type RejectedInstruction, type ReportType } from '../protocol/messages.ts';
import { newAccountName, newPassword } from './credentials.ts';
import { AccountError, type AccountBackend } from './os/backend.ts';
import { removeAccount, type RemovalStep } from './removal.ts';
import type { CredentialSink, DeliveryResult } from './sink.ts';
import type { GrantRecord, StateStore } from './state.ts';
import { nextUid } from './uids.ts';


/** Steps after which the removal has begun and is retried until done. */
const REMOVAL_UNDER_WAY: readonly GrantRecord['step'][] = ['removing', 'disabled', 'deleted'];
/** Steps at which the account no longer exists. */
const GONE: readonly GrantRecord['step'][] = ['deleted', 'removed', 'failed'];

const CREATE_ATTEMPTS = 3;
const ALERT_AFTER = 3;
/** A taken uid (an account made by someone else) is skipped; this many in a row is a fault. */
const UID_TRIES = 20;
/** How long finished grants are remembered, so a late duplicate instruction cannot recreate them. */
const KEEP_FINISHED_MS = 24 * 3600_000;

export class GrantRunner {
  private lock: Promise<void> = Promise.resolve();
  private pending: Promise<void> | null = null;

  constructor(
    private readonly store: StateStore,
    private readonly backend: AccountBackend,
    private readonly sink: CredentialSink,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  private get grants() {
    return this.store.state.grants;
  }

  /** Applies one instruction to the stored plans. Returns false for a duplicate. */
  accept(ins: Instruction): Promise<boolean> {
    return this.exclusive(() => this.apply(ins));
  }

  private async apply(ins: Instruction): Promise<boolean> {
    if (!this.store.markSeen(ins.id)) return false;
    const id = grantIdOf(ins);
    const known = this.grants[id];
    if (!known && !('plan' in ins)) {
      // A revoke pushed without its plan for a grant this agent never had: nothing to end.
      this.log.info({ grantId: id, kind: ins.kind }, 'revoke for a grant this agent does not know');
      await this.store.save();
      return true;
    }
    const r = known ?? (await this.plan(ins as Extract<Instruction, { plan: unknown }>));
    if (ins.kind === 'enable') r.enableNow = true;
    if (ins.kind === 'expire' || ins.kind === 'revoke') r.removeNow = true;
    if (ins.kind === 'revoke') r.revoked = true;
    if (ins.kind === 'resend' && (r.step === 'created' || r.step === 'enabled')) {
      // The old password is stored nowhere: a new one is set and sent on the next pass.
      this.sink.cancel(id);
      r.emailPending = true;
    }
    await this.store.save();
    return true;
  }

  /**
   * Tells the server an instruction could not be applied (it marks the grant failed with the
   * reason). The rest of the poll goes on: one bad instruction must not cut the endpoint off.
   */
  reject(rej: RejectedInstruction): Promise<void> {
    return this.exclusive(async () => {
      this.log.error({ instructionId: rej.id, grantId: rej.grantId, reason: rej.reason }, 'instruction rejected');
      if (rej.id && !this.store.markSeen(rej.id)) return;
      if (!rej.grantId) return;
      this.store.state.outbox.push({ id: randomUUID(), grantId: rej.grantId, type: 'rejected', at: new Date(this.now()).toISOString(), detail: rej.reason });
      await this.store.save();
    });
  }

  private async plan(ins: Extract<Instruction, { plan: unknown }>): Promise<GrantRecord> {
    const taken = new Set(Object.values(this.grants).map((g) => g.username));
    const username = await newAccountName(async (n) => taken.has(n) || (await this.backend.lookup(n)) !== null);
    const r: GrantRecord = { plan: ins.plan, username, ...nextUid(this.store.state, this.backend.uidRange), step: 'planned', enableNow: false, removeNow: false, attempts: 0, alerted: false, emailPending: false, revoked: false };
    this.grants[ins.plan.grantId] = r;
    this.log.info({ grantId: ins.plan.grantId, username, kind: ins.kind }, 'grant planned');
    return r;
  }

  /** Runs every step that is due now. One queued pass serves every caller that arrives before it starts. */
  runDue(): Promise<void> {
    this.pending ??= this.exclusive(async () => {
      this.pending = null;
      for (const [id, r] of Object.entries(this.grants)) await this.step(id, r);
      this.prune();
    });
    return this.pending;
  }

  /** Serialises everything that touches the accounts or the state. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.lock.then(fn);
    this.lock = p.then(
      () => {},
      () => {},
    );
    return p;
  }

  /** When the next step falls due (ms since epoch), or null if nothing is pending. */
  nextDueAt(): number | null {
    let next: number | null = null;
    for (const r of Object.values(this.grants)) {
      const t = this.dueAt(r);
      if (t !== null && (next === null || t < next)) next = t;
    }
    return next;
  }

  private dueAt(r: GrantRecord): number | null {
    if (r.step === 'removed' || r.step === 'failed') return null;
    const retry = r.retryAt ? Date.parse(r.retryAt) : 0;
    if (REMOVAL_UNDER_WAY.includes(r.step) || r.removeNow) return retry;
    const end = Date.parse(r.plan.endAt);
    if (this.needsNewPassword(r)) return retry;
    if (r.step === 'created') return Math.max(retry, Math.min(r.enableNow ? 0 : Date.parse(r.plan.enableAt), end));
    if (r.step === 'enabled') return Math.max(retry, end);
    return retry; // planned or creating: due now
  }

  private async step(id: string, r: GrantRecord): Promise<void> {
    const t = this.now();
    const due = this.dueAt(r);
    if (due === null || due > t) return;
    const mustRemove = r.removeNow || t >= Date.parse(r.plan.endAt);
    try {
      if (mustRemove) await this.remove(r);
      else if (r.step === 'planned' || r.step === 'creating') await this.create(r);
      else if (this.needsNewPassword(r)) await this.resetPassword(r);
      else if (r.step === 'created') await this.enable(r);
      r.attempts = 0;
      delete r.retryAt;
    } catch (err) {
      await this.failed(id, r, mustRemove, err);
    }
    await this.store.save();
    // Creation and enabling can both be due in one pass (a grant starting now).
    if (r.step === 'created' && this.dueAt(r)! <= this.now()) await this.step(id, r);
  }

  private async create(r: GrantRecord): Promise<void> {
    if (r.step === 'creating' && (await this.backend.lookup(r.username))) {
      // A crash mid-create lost the password: start over with a clean account.
      await removeAccount(this.backend, { name: r.username, id: r.accountId ?? '' }, 'disable');
    }
    r.step = 'creating';
    await this.store.save();
    const password = newPassword();
    for (let tries = 1; ; tries++) {
      try {
        const spec = { name: r.username, group: r.plan.group, grantId: r.plan.grantId, expiresAt: new Date(r.plan.endAt), ...(r.uid === undefined ? {} : { uid: r.uid }) };
        r.accountId = (await this.backend.createDisabled(spec, password)).id;
        break;
      } catch (err) {
        if (!(err instanceof AccountError && err.code === 'ID_TAKEN' && tries < UID_TRIES)) throw err;
        Object.assign(r, nextUid(this.store.state, this.backend.uidRange));
        await this.store.save();
      }
    }
    r.step = 'created';
    r.emailPending = true;
    this.report(r, 'created');
    await this.store.save();
    this.log.info({ grantId: r.plan.grantId, username: r.username }, 'account created, disabled');
    this.sink.deliver(r, password);
  }

  /**
   * Credentials still owed but no delivery under way: the agent restarted (the
   * password died with the process) or the admin asked for a resend.
   */
  private needsNewPassword(r: GrantRecord): boolean {
    return r.emailPending && (r.step === 'created' || r.step === 'enabled') && !this.sink.isActive(r.plan.grantId);
  }

  private async resetPassword(r: GrantRecord): Promise<void> {
    const password = newPassword();
    await this.backend.setPassword(r.username, password);
    this.report(r, 'password-reset');
    this.log.info({ grantId: r.plan.grantId, username: r.username }, 'new password set for delivery');
    this.sink.deliver(r, password);
  }

  /** Records how a delivery attempt went (called by the sink). */
  deliveryOutcome(grantId: string, result: DeliveryResult): Promise<void> {
    const r = this.grants[grantId];
    if (!r) return Promise.resolve();
    // Cleared at once, before the sink forgets the delivery: a pass in between must not
    // see "credentials owed, none under way" and set yet another password.
    if (result.ok) r.emailPending = false;
    return this.exclusive(async () => {
      if (result.ok && result.via === 'endpoint') this.report(r, 'email-sent');
      if (!result.ok) this.report(r, 'email-failed', result.error);
      await this.store.save();
    });
  }

  private async enable(r: GrantRecord): Promise<void> {
    // Armed first: a crash between the two then leaves a timer with nothing to do, never an
    // enabled account without its timer.
    const backstop = await this.armBackstop(r);
    await this.backend.enable(r.username, new Date(r.plan.endAt));
    r.step = 'enabled';
    this.report(r, 'enabled', `backstop: ${backstop}`);
    this.log.info({ grantId: r.plan.grantId, username: r.username }, 'account enabled');
  }

  /**
   * The OS timer that makes the account dead at the end even if this agent is not running then.
   * Its failure does not hold the grant back (the account expiry set at enable still stands): it
   * is logged and named in the enabled report.
   */
  private async armBackstop(r: GrantRecord): Promise<string> {
    return this.backend.armBackstop(r.username, new Date(r.plan.endAt)).catch((err: Error) => {
      this.log.error({ grantId: r.plan.grantId, username: r.username, err: err.message }, 'OS backstop timer not armed');
      return `not armed (${err.message})`;
    });
  }

  /**
   * disable → (recorded) → log off → delete → (recorded, reported removed) → purge. A retry
   * resumes at the step that failed; the account is dead from the first step on.
   */
  private async remove(r: GrantRecord): Promise<void> {
    this.sink.cancel(r.plan.grantId);
    r.emailPending = false;
    if (r.step === 'planned') return this.finishRemoval(r);
    const from: RemovalStep = r.step === 'disabled' ? 'logoff' : r.step === 'deleted' ? 'purge' : 'disable';
    if (from === 'disable') {
      r.step = 'removing';
      await this.store.save();
    }
    let existed = r.step !== 'deleted';
    await removeAccount(this.backend, { name: r.username, id: r.accountId ?? (r.uid === undefined ? '' : String(r.uid)) }, from, async (step, o) => {
      if (step === 'disable') {
        existed = o.existed;
        if (!existed) return;
        r.step = 'disabled';
        this.report(r, 'disabled');
      } else if (step === 'logoff' && o.ended !== undefined) {
        this.report(r, 'logged-off', `${o.ended} process(es) ended`);
      } else if (step === 'delete') {
        r.step = 'deleted';
        // Purge failures are counted and alerted on their own: the account itself is gone.
        r.attempts = 0;
        r.alerted = false;
        this.report(r, 'removed', existed ? undefined : 'the account was already gone');
        this.log.info({ grantId: r.plan.grantId, username: r.username }, 'account disabled, logged off and deleted');
        if (existed) void this.sink.ended(r);
      } else if (step === 'purge') {
        r.step = 'removed';
        return;
      }
      await this.store.save();
    });
  }

  /** A grant that never got an account. */
  private finishRemoval(r: GrantRecord): void {
    r.step = 'removed';
    this.report(r, 'removed');
  }

  private async failed(id: string, r: GrantRecord, removing: boolean, err: unknown): Promise<void> {
    const reason = err instanceof AccountError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
    r.attempts += 1;
    r.retryAt = new Date(this.now() + backoffMs(r.attempts)).toISOString();
    this.log.error({ grantId: id, username: r.username, attempts: r.attempts, reason }, removing ? 'removal failed, will retry' : 'step failed, will retry');
    if (removing) {
      if (r.attempts >= ALERT_AFTER && !r.alerted) {
        r.alerted = true;
        // After deletion only leftovers remain: the grant is over, the endpoint needs a look.
        this.report(r, r.step === 'deleted' ? 'cleanup-failed' : 'removal-failed', reason);
      }
    } else if ((r.step === 'planned' || r.step === 'creating') && r.attempts >= CREATE_ATTEMPTS) {
      // Give up on a grant whose account cannot be created; make sure nothing half-made is left.
      await removeAccount(this.backend, { name: r.username, id: r.accountId ?? '' }, 'disable').catch(() => {});
      r.step = 'failed';
      this.report(r, 'failed', reason);
    }
  }

  /**
   * Start-up and periodic check against the OS: accounts we manage that no live
   * grant explains are removed, and grants whose account vanished are closed.
   */
  reconcile(): Promise<void> {
    return this.exclusive(() => this.checkAgainstOs());
  }

  /**
   * At start: arms the OS timers of enabled grants again. A reboot drops them (systemd's
   * transient timers, the detached process elsewhere), and a crash may have come between
   * disarming and arming one.
   */
  rearmBackstops(): Promise<void> {
    return this.exclusive(async () => {
      for (const r of Object.values(this.grants)) {
        if (r.step === 'enabled' && Date.parse(r.plan.endAt) > this.now()) await this.armBackstop(r);
      }
    });
  }

  private async checkAgainstOs(): Promise<void> {
    const live = new Map(Object.values(this.grants).filter((r) => !GONE.includes(r.step)).map((r) => [r.username, r]));
    for (const acct of await this.backend.listManaged()) {
      if (live.has(acct.name)) continue;
      this.log.warn({ username: acct.name }, 'removing a managed account no grant explains');
      await removeAccount(this.backend, { name: acct.name, id: acct.id }, 'disable').catch((err) =>
        this.log.error({ username: acct.name, err: (err as Error).message }, 'could not remove a managed account no grant explains; will retry'),
      );
    }
    for (const r of live.values()) {
      if ((r.step === 'created' || r.step === 'enabled' || r.step === 'disabled') && !(await this.backend.lookup(r.username))) {
        // Someone else deleted it: what it left behind is still ours to purge.
        r.step = 'deleted';
        this.report(r, 'removed', 'the account was already gone');
      }
    }
    await this.store.save();
  }

  private report(r: GrantRecord, type: ReportType, detail?: string): void {
    this.store.state.outbox.push({
      id: randomUUID(),
      grantId: r.plan.grantId,
      type,
      at: new Date(this.now()).toISOString(),
      username: r.username,
      ...(detail ? { detail } : {}),
    });
  }

  private prune(): void {
    const pending = new Set(this.store.state.outbox.map((o) => o.grantId));
    for (const [id, r] of Object.entries(this.grants)) {
      const finished = r.step === 'removed' || r.step === 'failed';
      if (finished && !pending.has(id) && this.now() - Date.parse(r.plan.endAt) > KEEP_FINISHED_MS) delete this.grants[id];
    }
  }
}
