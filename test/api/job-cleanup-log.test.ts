/**
 * A finished grant's jobs are deleted (commands/transition.ts forgetFinished)
 * while Agenda may hold one of them locked and queued to run, as after an
 * outage, when many jobs come due at once. Agenda then fails to save the job
 * ("cannot be updated in the database, maybe it does not exist anymore") and
 * emits an error: that is expected, not an error in the server log.
 * Real server, FerretDB and Agenda.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { applyEvent } from '../../server/commands/transition.ts';
import type { Ctx } from '../../server/context.ts';
import type { GrantDoc } from '../../server/store/collections.ts';
import { startStack, type Stack } from '../support/stack.ts';

/** Pino levels: 50 is error, 60 fatal. */
const errorLines = (log: string) =>
  log
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { level: number; msg: string; err?: { message?: string } })
    .filter((l) => l.level >= 50);

describe("a finished grant's leftover Agenda jobs", function () {
  this.timeout(90_000);
  let stack: Stack;
  let ctx: Ctx;
  const endpointId = randomUUID();

  before(async () => {
    // Scans every 2 s: Agenda locks a job up to one scan before it is due and then waits for it.
    stack = await startStack({ schedulerProcessEvery: 2000 });
    ctx = stack.server!.ctx;
    const now = new Date();
    await ctx.c.endpoints.insertOne({ _id: endpointId, hostname: `jobs-${endpointId.slice(0, 6)}`, os: 'linux', agentVersion: 't', credentialHash: 'x', enrolledAt: now, lastSeenAt: now });
  });
  after(() => stack?.stop());

  async function grant(): Promise<string> {
    const id = randomUUID();
    const now = Date.now();
    const doc: GrantDoc = {
      _id: id, requestId: id, operation: 'temporary-access', email: 'jobs@example.com', emailKey: 'jobs@example.com', endpointId,
      hostname: 'jobs', group: 'Administrators', startAt: new Date(now + 600_000), enableAt: new Date(now + 600_000), endAt: new Date(now + 900_000),
      serverSideSmtp: false, state: 'provisioned', username: 'jit_jobs', revokeRequested: false, delivery: { status: 'sent', attempts: 1 },
      createdBy: 'admin', createdAt: new Date(now), updatedAt: new Date(now),
    };
    await ctx.c.grants.insertOne(doc);
    return id;
  }

  const jobOf = (grantId: string) => ctx.c.grants.db.collection('agendaJobs').findOne({ name: 'grant.enable', 'data.grantId': grantId });

  /**
   * A grant with a job due in 1.9 s that finishes (its jobs deleted) while Agenda holds
   * that job locked, waiting for its time. True once that happened; false if the scan
   * that locked it came too close to its time (then the caller tries again).
   */
  async function finishWhileQueued(): Promise<boolean> {
    const id = await grant();
    const due = Date.now() + 1900;
    await ctx.scheduler.schedule('grant.enable', new Date(due), { grantId: id });
    while (!(await jobOf(id))?.lockedAt) {
      // Not seen locked (a busy machine: the scan came late and the job ran at once): try again.
      if (Date.now() > due) return false;
      await sleep(20);
    }
    if (Date.now() > due - 300) {
      await sleep(Math.max(0, due - Date.now()) + 500);
      return false;
    }
    await applyEvent(ctx, id, { type: 'removed' }, `agent:${endpointId}`);
    assert.equal(await jobOf(id), null, 'the finished grant has no jobs left');
    await sleep(2000); // the job's time comes
    return true;
  }

  it('are not logged as errors when deleted while queued to run', async () => {
    let happened = false;
    for (let attempt = 0; attempt < 8 && !happened; attempt++) happened = await finishWhileQueued();
    assert.ok(happened, 'a job was deleted while Agenda held it locked');
    const log = await stack.serverLog();
    assert.deepEqual(errorLines(log), []);
    assert.match(log, /was deleted while queued to run/, 'the skipped job is logged at debug level, with the reason');
  });
});
