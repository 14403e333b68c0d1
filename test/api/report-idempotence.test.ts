/**
 * Reports applied more than once (an agent whose request timed out sends the
 * batch again, maybe while the first copy is still being applied; a database
 * outage between the steps): one audit event per report, nothing lost.
 * Real server and FerretDB; applyReports called as the route does.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Report } from '../../protocol/messages.ts';
import { applyReports } from '../../server/commands/applyReports.ts';
import type { Ctx } from '../../server/context.ts';
import type { GrantDoc } from '../../server/store/collections.ts';
import { startStack, type Stack } from '../support/stack.ts';

describe('reports applied twice', function () {
  this.timeout(60_000);
  let stack: Stack;
  let ctx: Ctx;
  const endpointId = randomUUID();

  before(async () => {
    stack = await startStack();
    ctx = stack.server!.ctx;
    const now = new Date();
    await ctx.c.endpoints.insertOne({ _id: endpointId, hostname: `idem-${endpointId.slice(0, 6)}`, os: 'linux', agentVersion: 't', credentialHash: 'x', enrolledAt: now, lastSeenAt: now });
  });
  after(() => stack?.stop());

  /** A provisioned grant whose access window has passed (no job of its own will act during the test). */
  async function grant(): Promise<string> {
    const id = randomUUID();
    const now = Date.now();
    const doc: GrantDoc = {
      _id: id, requestId: id, operation: 'temporary-access', email: 'idem@example.com', emailKey: 'idem@example.com', endpointId,
      hostname: 'idem', group: 'Administrators', startAt: new Date(now + 3_600_000), enableAt: new Date(now + 3_600_000), endAt: new Date(now + 7_200_000),
      serverSideSmtp: false, state: 'provisioned', username: 'jit_idem', revokeRequested: false, delivery: { status: 'sent', attempts: 1 },
      createdBy: 'admin', createdAt: new Date(now), updatedAt: new Date(now),
    };
    await ctx.c.grants.insertOne(doc);
    return id;
  }

  function batch(grantId: string): Report[] {
    const at = new Date().toISOString();
    return [
      { id: randomUUID(), grantId, type: 'enabled', at },
      { id: randomUUID(), grantId, type: 'disabled', at },
      { id: randomUUID(), grantId, type: 'logged-off', at, detail: '2 processes' },
      { id: randomUUID(), grantId, type: 'removed', at },
    ];
  }

  async function countsOf(grantId: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const e of await ctx.c.audit.find({ grantId }).toArray()) counts[e.type] = (counts[e.type] ?? 0) + 1;
    return counts;
  }

  const once = { 'agent.enabled': 1, 'agent.disabled': 1, 'agent.logged-off': 1, 'agent.removed': 1, 'grant.enabled': 1, 'grant.removed': 1 };

  it('writes one audit event per report when the same batch arrives twice at once', async () => {
    const id = await grant();
    const reports = batch(id);
    const [a, b] = await Promise.all([applyReports(ctx, endpointId, reports), applyReports(ctx, endpointId, reports)]);
    assert.deepEqual(a, reports.map((r) => r.id));
    assert.deepEqual(b, reports.map((r) => r.id));
    assert.deepEqual(await countsOf(id), once);
    assert.equal((await ctx.c.grants.findOne({ _id: id }))!.state, 'removed');
  });

  it('writes one audit event per report when the batch comes again after it was applied', async () => {
    const id = await grant();
    const reports = batch(id);
    await applyReports(ctx, endpointId, reports);
    await applyReports(ctx, endpointId, reports);
    assert.deepEqual(await countsOf(id), once);
  });

  it('writes one audit event per report when the first application died before marking the reports seen', async () => {
    const id = await grant();
    const reports = batch(id);
    await applyReports(ctx, endpointId, reports);
    // What a database outage (or a crash) after the audit and before markSeen leaves behind.
    await ctx.c.seenReports.deleteMany({ _id: { $in: reports.map((r) => r.id) } });
    await applyReports(ctx, endpointId, reports);
    assert.deepEqual(await countsOf(id), once);
  });

  it('loses nothing when it died after the audit and before the state was stored: the retry moves the grant', async () => {
    const id = await grant();
    const reports = batch(id);
    await applyReports(ctx, endpointId, reports);
    // As if every event had been audited but the grant's new state never stored, nothing marked seen.
    await ctx.c.grants.updateOne({ _id: id }, { $set: { state: 'provisioned' } });
    await ctx.c.seenReports.deleteMany({ _id: { $in: reports.map((r) => r.id) } });
    await applyReports(ctx, endpointId, reports);
    assert.equal((await ctx.c.grants.findOne({ _id: id }))!.state, 'removed');
    assert.deepEqual(await countsOf(id), once);
  });

  it('counts an email report applied again after it was not marked seen once', async () => {
    const id = await grant();
    await ctx.c.grants.updateOne({ _id: id }, { $set: { delivery: { status: 'pending', attempts: 0 } } });
    const reports: Report[] = [{ id: randomUUID(), grantId: id, type: 'email-sent', at: new Date().toISOString() }];
    await applyReports(ctx, endpointId, reports);
    await ctx.c.seenReports.deleteMany({ _id: reports[0]!.id });
    await applyReports(ctx, endpointId, reports);
    assert.equal((await ctx.c.grants.findOne({ _id: id }))!.delivery.attempts, 1);
    assert.deepEqual(await countsOf(id), { 'email.sent': 1 });
  });
});
