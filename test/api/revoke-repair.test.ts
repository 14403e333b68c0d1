/**
 * Revokes left half-done (the database gone between their steps, a crash) are
 * finished; a revoke on a failing grant is remembered; a final report that came
 * again finishes its grant's clean-up. Real server and FerretDB; the half-done
 * states are written into the database directly, as an outage leaves them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Report } from '../../protocol/messages.ts';
import { applyReports } from '../../server/commands/applyReports.ts';
import { queueInstruction } from '../../server/commands/instructions.ts';
import { replayRevokes } from '../../server/commands/revokeGrant.ts';
import { repairRevokes } from '../../server/commands/revokeRepair.ts';
import { scheduleGrantJobs } from '../../server/commands/scheduleGrant.ts';
import type { Ctx } from '../../server/context.ts';
import type { GrantState } from '../../server/domain/lifecycle.ts';
import { outageOf } from '../../server/journal/registry.ts';
import type { GrantDoc } from '../../server/store/collections.ts';
import { startStack, type Stack } from '../support/stack.ts';

describe('revokes finished and grants cleaned up after interruptions', function () {
  this.timeout(120_000);
  let stack: Stack;
  const ctx = (): Ctx => stack.server!.ctx;
  const endpointId = randomUUID();

  before(async () => {
    stack = await startStack();
    const now = new Date();
    await ctx().c.endpoints.insertOne({ _id: endpointId, hostname: `rep-${endpointId.slice(0, 6)}`, os: 'linux', agentVersion: 't', credentialHash: 'x', enrolledAt: now, lastSeenAt: now });
  });
  after(() => stack?.stop());

  /** A grant stored in `state`, its window an hour ahead, with no instruction and no job. */
  async function grant(state: GrantState, extra: Partial<GrantDoc> = {}): Promise<GrantDoc> {
    const id = randomUUID();
    const now = Date.now();
    const doc: GrantDoc = {
      _id: id, requestId: id, operation: 'temporary-access', email: 'rep@example.com', emailKey: 'rep@example.com', endpointId,
      hostname: 'rep', group: 'Administrators', startAt: new Date(now + 3_600_000), enableAt: new Date(now + 3_600_000), endAt: new Date(now + 7_200_000),
      serverSideSmtp: false, state, revokeRequested: state === 'revoking', delivery: { status: 'sent', attempts: 1 },
      createdBy: 'admin', createdAt: new Date(now - 600_000), updatedAt: new Date(now - 600_000), ...extra,
    };
    await ctx().c.grants.insertOne(doc);
    return doc;
  }

  const jobs = () => stack.server!.db.collection('agendaJobs');
  /** Deletion checks due within the hour (a revoke's, not the one after the grant's end). */
  const soonVerifies = (grantId: string) => jobs().countDocuments({ name: 'grant.verify', 'data.grantId': grantId, nextRunAt: { $ne: null, $lte: new Date(Date.now() + 3_600_000) } });
  const revokes = (grantId: string) => ctx().c.instructions.find({ grantId, kind: 'revoke' }).toArray();
  const report = (grantId: string, type: Report['type']): Report => ({ id: randomUUID(), grantId, type, at: new Date().toISOString() });

  async function restart(): Promise<void> {
    await stack.stopServer();
    await stack.startServer();
  }

  it('at start, a grant left revoking without its revoke instruction or deletion check gets both, once', async () => {
    const bare = await grant('revoking');
    const sent = await grant('revoking');
    await ctx().c.instructions.insertOne({ _id: randomUUID(), endpointId, grantId: sent._id, kind: 'revoke', plan: {} as never, createdAt: new Date(), ackedAt: new Date() });
    await restart();
    assert.equal((await revokes(bare._id)).length, 1, 'the revoke is queued');
    assert.equal(await soonVerifies(bare._id), 1, 'and its deletion check scheduled');
    assert.equal((await revokes(sent._id)).length, 1, 'an agent that has its revoke gets no second one');
    assert.equal(await soonVerifies(sent._id), 1);
    await restart();
    assert.equal((await revokes(bare._id)).length, 1, 'repairing twice adds nothing');
    assert.equal(await soonVerifies(bare._id), 1);
  });

  it("the minute's sweep finishes a half-done revoke, but leaves one younger than 30 s to the request still writing it", async () => {
    const young = await grant('revoking', { updatedAt: new Date() });
    const old = await grant('revoking');
    await repairRevokes(ctx());
    assert.equal((await revokes(young._id)).length, 0);
    assert.equal(await soonVerifies(young._id), 0);
    assert.equal((await revokes(old._id)).length, 1);
    assert.equal(await soonVerifies(old._id), 1);
  });

  it('a journaled revoke whose grant is revoking and whose push was acked still gets its deletion check', async () => {
    const g = await grant('revoking');
    const o = outageOf(ctx())!;
    const instructionId = randomUUID();
    ctx().hub.push(endpointId, { id: instructionId, kind: 'revoke', grantId: g._id, plan: {} as never });
    ctx().hub.ackPushed(endpointId, [instructionId]);
    await o.journal.append({ v: 1, id: randomUUID(), kind: 'revoke', grantId: g._id, endpointId, actor: 'admin', at: new Date().toISOString(), instructionId });
    assert.equal(await replayRevokes(ctx()), 0);
    assert.equal(await soonVerifies(g._id), 1);
    assert.equal((await ctx().c.audit.find({ grantId: g._id, type: 'grant.revoke-requested' }).toArray()).length, 1);
  });

  it('a revoke of a grant in revocation-failed is remembered: its later removal ends it revoked', async () => {
    const g = await grant('revocation-failed', { reason: 'endpoint has not confirmed deletion (check 1)' });
    const res = await stack.api.request('POST', `/api/v1/grants/${g._id}/revoke`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((await ctx().c.grants.findOne({ _id: g._id }))!.revokeRequested, true);
    assert.equal(await ctx().c.audit.countDocuments({ grantId: g._id, type: 'grant.revoke-requested', actor: 'admin' }), 1);
    await applyReports(ctx(), endpointId, [report(g._id, 'removed')]);
    assert.equal((await ctx().c.grants.findOne({ _id: g._id }))!.state, 'revoked');
  });

  it('a final report that comes again finishes the clean-up its first copy could not (crash after the state was stored)', async () => {
    const g = await grant('requested', { delivery: { status: 'pending', attempts: 0 } });
    await queueInstruction(ctx(), g, 'provision');
    await scheduleGrantJobs(ctx(), g);
    // What a crash between storing `failed` and its clean-up leaves: instructions, jobs, a pending delivery.
    await ctx().c.grants.updateOne({ _id: g._id }, { $set: { state: 'failed', reason: 'useradd failed' } });
    await applyReports(ctx(), endpointId, [{ ...report(g._id, 'failed'), detail: 'useradd failed' }]);
    assert.equal(await ctx().c.instructions.countDocuments({ grantId: g._id }), 0, 'instructions dropped');
    assert.equal(await jobs().countDocuments({ 'data.grantId': g._id }), 0, 'jobs dropped');
    assert.equal((await ctx().c.grants.findOne({ _id: g._id }))!.delivery.status, 'not-sent');
  });
});
