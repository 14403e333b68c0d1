/**
 * The policy layer: decides, from each grant's plan and the clock, which step is
 * due, and records every step before and after it runs. It works without the
 * server: reports wait in the outbox. The operation decides what a step does:
 * temporaryAccess.ts (a new account) or elevation.ts (an existing one); the end
 * of a temporary account (removal, backstop timer, the check against the OS) is
 * in grantEnd.ts, the rogue-admin guard in guard.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { backoffMs } from '../mail/retryLoops.ts';
import { grantIdOf, type Instruction, type RejectedInstruction, type ReportType } from '../protocol/messages.ts';
import { checkElevation, enableElevation, endElevation } from './elevation.ts';
import { checkAgainstOs, disableAhead, REMOVAL_UNDER_WAY } from './grantEnd.ts';
import { armBackstop, backstopDueAt, rearmBackstops } from './timers.ts';
import type { RunnerParts } from './runnerParts.ts';
import { createTemporary, enableTemporary, needsNewPassword, removeTemporary, resetPassword } from './temporaryAccess.ts';
import { AccountError, type AccountBackend } from './os/backend.ts';
import { removeAccount, type RemovalStep } from './removal.ts';
import type { CredentialSink, DeliveryResult } from './sink.ts';
import type { GrantRecord, StateStore } from './state.ts';
import { nextUid } from './uids.ts';

type PlannedInstruction = Extract<Instruction, { plan: unknown }>;

const CREATE_ATTEMPTS = 3;
const ALERT_AFTER = 3;
/** How long finished grants are remembered, so a late duplicate instruction cannot recreate them. */
const KEEP_FINISHED_MS = 24 * 3600_000;
/** Grants remembered as revoked before their plan arrived. */
const ENDED_BEFORE_PLAN_KEEP = 500;

export class GrantRunner {
  private lock: Promise<void> = Promise.resolve();
  private pending: Promise<void> | null = null;
  /** Rejections already reported, so an instruction that comes back every poll is reported once. */
  private rejectedSent = new Set<string>();
  private readonly parts: RunnerParts;
  /** End-user emails of the pass under way (RunnerParts.notify). */
  private notices: (() => Promise<void>)[] = [];

  constructor(
    private readonly store: StateStore,
    private readonly backend: AccountBackend,
    private readonly sink: CredentialSink,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.parts = { store, backend, sink, log, now, report: (r, type, detail) => this.report(r, type, detail), notify: (send) => this.notices.push(send) };
  }

  private get grants() {
    return this.store.state.grants;
  }

  /** Applies one instruction to the stored plans. Returns false for a duplicate. */
  accept(ins: Instruction): Promise<boolean> {
    return this.exclusive(() => this.apply(ins));
  }

  private async apply(ins: Instruction): Promise<boolean> {
    // Marked seen only once applied: an instruction whose planning failed comes again and is retried.
    if (this.store.seen(ins.id)) return false;
    const id = grantIdOf(ins);
    const known = this.grants[id];
    if (!known && !('plan' in ins)) {
      // A revoke pushed without its plan for a grant this agent does not have (yet): remember it,
      // so a provision that arrives later ends the grant instead of creating its account.
      this.log.info({ grantId: id, kind: ins.kind }, 'revoke for a grant this agent does not know');
      const ended = this.store.state.endedBeforePlan;
      ended.push(id);
      ended.splice(0, Math.max(0, ended.length - ENDED_BEFORE_PLAN_KEEP));
    } else {
      const r = known ?? (await this.plan(ins as PlannedInstruction));
      if (ins.kind === 'enable') r.enableNow = true;
      if (ins.kind === 'expire' || ins.kind === 'revoke') r.removeNow = true;
      if (ins.kind === 'revoke') r.revoked = true;
      if (ins.kind === 'resend' && (r.step === 'created' || r.step === 'enabled')) {
        // The old password is stored nowhere: a new one is set and sent on the next pass.
        this.sink.cancel(id);
        r.emailPending = true;
      }
    }
    this.store.markSeen(ins.id);
    await this.store.save();
    return true;
  }

  /**
   * An instruction that could not be parsed: reported once (the server fails a grant that was
   * only requested, and audits it otherwise). One naming a grant this agent runs and asking to
   * end it (revoke, expire) is obeyed all the same: failing safe means ending access.
   */
  reject(rej: RejectedInstruction): Promise<void> {
    return this.exclusive(async () => {
      if (rej.id && this.store.seen(rej.id)) return;
      const r = rej.grantId ? this.grants[rej.grantId] : undefined;
      if (r && (rej.kind === 'revoke' || rej.kind === 'expire')) {
        r.removeNow = true;
        if (rej.kind === 'revoke') r.revoked = true;
      }
      const key = `${rej.grantId}|${rej.reason}`;
      if (rej.grantId && !this.rejectedSent.has(key)) {
        this.rejectedSent.add(key);
        this.log.error({ instructionId: rej.id, grantId: rej.grantId, reason: rej.reason }, 'instruction rejected');
        this.store.state.outbox.push({ id: randomUUID(), grantId: rej.grantId, type: 'rejected', at: new Date(this.now()).toISOString(), detail: rej.reason });
      }
      if (rej.id) this.store.markSeen(rej.id);
      await this.store.save();
    });
  }

  private async plan(ins: PlannedInstruction): Promise<GrantRecord> {
    const elevate = ins.plan.operation === 'elevate-account';
    const taken = new Set(Object.values(this.grants).map((g) => g.username));
    // Loaded with the first temporary grant: an idle agent keeps generate-password out of its memory.
    const { newAccountName } = await import('./credentials.ts');
    const username = elevate ? (ins.plan.account ?? '') : await newAccountName(async (n) => taken.has(n) || (await this.backend.lookup(n)) !== null);
    const endedAlready = this.store.state.endedBeforePlan.includes(ins.plan.grantId);
    const r: GrantRecord = {
      plan: ins.plan, username, ...(elevate ? {} : nextUid(this.store.state, this.backend.uidRange)), step: 'planned',
      enableNow: false, removeNow: endedAlready, attempts: 0, alerted: false, emailPending: false, revoked: endedAlready,
      backstop: 'none', backstopAttempts: 0,
    };
    this.grants[ins.plan.grantId] = r;
    this.log.info({ grantId: ins.plan.grantId, username, kind: ins.kind }, 'grant planned');
    return r;
  }

  /**
   * Runs every step that is due now. One queued pass serves every caller that arrives before it
   * starts. Ended access goes first and fastest: every account due for removal is made dead
   * (elevations lose their rights), then deleted, and only then come purges, emails and the rest
   * (after an agent restart several may be due at once, and each purge takes longer than a delete).
   */
  runDue(): Promise<void> {
    this.pending ??= this.exclusive(async () => {
      this.pending = null;
      const due = await this.disableDue();
      for (const [id, r] of due) await this.disableDue().then(() => this.step(id, r, 'delete'));
      // An end that comes while this pass runs (a purge may take seconds) is not left for the next.
      for (const [id, r] of Object.entries(this.grants)) await this.disableDue().then(() => this.step(id, r));
      this.prune();
      // Loading the mail code and rendering take a while the first time: not before the work is done.
      for (const send of this.notices.splice(0)) void send();
    });
    return this.pending;
  }

  /** Every grant whose removal is due now made dead (elevations: out of the group) at once; returns them. */
  private async disableDue(): Promise<[string, GrantRecord][]> {
    const due = Object.entries(this.grants).filter(([, r]) => this.mustRemove(r, this.now()) && (this.dueAt(r) ?? Infinity) <= this.now());
    for (const [, r] of due) await disableAhead(this.parts, r);
    return due;
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
      for (const t of [this.dueAt(r), backstopDueAt(this.parts, r)]) if (t !== null && (next === null || t < next)) next = t;
    }
    return next;
  }

  private dueAt(r: GrantRecord): number | null {
    if (r.step === 'removed' || r.step === 'failed') return null;
    const retry = r.retryAt ? Date.parse(r.retryAt) : 0;
    if (REMOVAL_UNDER_WAY.includes(r.step) || r.removeNow) return retry;
    const end = Date.parse(r.plan.endAt);
    if (needsNewPassword(this.parts, r)) return retry;
    if (r.step === 'created') return Math.max(retry, Math.min(r.enableNow ? 0 : Date.parse(r.plan.enableAt), end));
    if (r.step === 'enabled') return Math.max(retry, end);
    return retry; // planned or creating: due now
  }

  /** Runs the grant's due step; `removalUpTo`: only a due removal, and only up to that step. */
  private async step(id: string, r: GrantRecord, removalUpTo?: RemovalStep): Promise<void> {
    const t = this.now();
    if (removalUpTo && !this.mustRemove(r, t)) return;
    const backstopDue = backstopDueAt(this.parts, r);
    if (backstopDue !== null && backstopDue <= t && t < Date.parse(r.plan.endAt)) {
      await armBackstop(this.parts, r);
      await this.store.save();
    }
    const due = this.dueAt(r);
    if (due === null || due > t) return;
    const mustRemove = this.mustRemove(r, t);
    const elevate = r.plan.operation === 'elevate-account';
    try {
      const all = Object.values(this.grants);
      if (mustRemove) await (elevate ? endElevation(this.parts, r, all) : removeTemporary(this.parts, r, all, removalUpTo));
      else if (r.step === 'planned' || r.step === 'creating') await (elevate ? checkElevation(this.parts, r) : createTemporary(this.parts, r));
      else if (needsNewPassword(this.parts, r)) await resetPassword(this.parts, r);
      else if (r.step === 'created') await (elevate ? enableElevation(this.parts, r) : enableTemporary(this.parts, r));
      r.attempts = 0;
      delete r.retryAt;
    } catch (err) {
      await this.failed(id, r, mustRemove, err);
    }
    await this.store.save();
    // Creation and enabling can both be due in one pass (a grant starting now).
    if (r.step === 'created' && this.dueAt(r)! <= this.now()) await this.step(id, r);
  }

  /** A removal once begun goes on, whatever the clock says now (it may have been set back). */
  private mustRemove(r: GrantRecord, t: number): boolean {
    return REMOVAL_UNDER_WAY.includes(r.step) || r.removeNow || t >= Date.parse(r.plan.endAt);
  }

  /** The grants this agent runs, as stored (the `jit` command's status reads them: agent/local/handlers.ts). */
  records(): Readonly<Record<string, GrantRecord>> {
    return this.grants;
  }

  /**
   * `jit end`: the person at the endpoint (their OS account) ends their grant. Recorded and
   * reported here; the removal is the next runDue (the caller's, once the person has the answer:
   * the logoff may end the very shell that asked).
   */
  endByUser(grantId: string, account: string): Promise<void> {
    return this.exclusive(async () => {
      const r = this.grants[grantId];
      if (!r || r.removeNow) return;
      r.removeNow = true;
      r.revoked = true;
      this.report(r, 'ended-by-user', account);
      await this.store.save();
    });
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
      // Give up on a grant whose account cannot be created; make sure nothing half-made is left
      // (an elevation made nothing yet: the person's own account is never touched here).
      if (r.plan.operation !== 'elevate-account') await removeAccount(this.backend, { name: r.username, id: r.accountId ?? '' }, 'disable').catch(() => {});
      r.step = 'failed';
      this.report(r, 'failed', reason);
    }
  }

  /**
   * Start-up and periodic check against the OS: accounts we manage that no live
   * grant explains are removed, and grants whose account vanished go on to their purge.
   */
  reconcile(): Promise<void> {
    return this.exclusive(() => checkAgainstOs(this.parts, Object.values(this.grants)));
  }

  /** At start: the OS timers a reboot or a crash may have taken (grantEnd.ts). */
  rearmBackstops(): Promise<void> {
    return this.exclusive(() => rearmBackstops(this.parts, Object.values(this.grants)));
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
