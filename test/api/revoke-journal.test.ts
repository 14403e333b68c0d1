import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { outageOf } from '../../server/journal/registry.ts';
import { ADMIN_TOKEN, grantBody } from '../support/stack.ts';
import { OutageStack, timed, type Timed } from '../support/outageStack.ts';

/**
 * A revoke while the database is down, at the HTTP level (the agent is played by raw
 * requests with the endpoint's credential): it takes effect or is refused within 5 s.
 * With the grant's agent connected it is journaled on the server's disk, pushed through the
 * agent's open long-poll (no database read), and stored with its audit event once the
 * database is back; without, 503 db.unavailable and nothing happens.
 * test/e2e/revoke-outage.test.ts runs the same with a real agent process.
 */
describe('revoke while the database is down', function () {
  this.timeout(180_000);
  const BOUND_MS = 5000;
  let s: OutageStack;

  before(async () => {
    s = await OutageStack.start();
  });
  after(() => s?.stop());
  afterEach(async () => {
    s.thawDb();
    await s.startDb();
    if (!s.server) await s.startServer();
  });

  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const revoke = (id: string) => timed(`${s.api.url}/api/v1/grants/${id}/revoke`, { method: 'POST', headers: admin });
  /** The journal's entries (server/journal/revokeJournal.ts: JSON lines under dataDir). */
  const journal = async () =>
    (await readFile(path.join(s.config.dataDir, 'journal', 'revokes.jsonl'), 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  const ctx = () => s.server!.ctx;

  /** An enrolled endpoint (no agent process) whose grant's plan has been delivered and acked, as an agent would. */
  async function endpointWithGrant(): Promise<{ endpointId: string; credential: string; grantId: string }> {
    const { body } = await s.api.request('POST', '/api/v1/enrollment-tokens');
    const hostname = `raw-${Math.random().toString(36).slice(2, 8)}`;
    const { endpointId, credential } = (await s.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os: 'linux', agentVersion: 't' })).body;
    const created = await s.api.request('POST', '/api/v1/grants', grantBody(endpointId, 600, 600));
    assert.equal(created.status, 201);
    const grantId: string = created.body.grants[0].id;
    const first = await agentCall(credential, 'GET', '/instructions?wait=0');
    const provision = first.body.instructions.find((i: { plan?: { grantId: string } }) => i.plan?.grantId === grantId);
    assert.ok(provision, JSON.stringify(first.body));
    assert.equal((await agentCall(credential, 'POST', '/acks', { ids: [provision.id] })).status, 204);
    return { endpointId, credential, grantId };
  }

  function agentCall(credential: string, method: string, p: string, body?: unknown, limitMs = 30_000) {
    const headers: Record<string, string> = { authorization: `Bearer ${credential}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    return timed(`${s.api.url}/agent/v1${p}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }, limitMs);
  }

  /** Opens a long-poll and waits until the server holds it (the answer is wrapped: an async function would wait for it). */
  async function openPoll(endpointId: string, credential: string): Promise<{ answer: Promise<Timed> }> {
    const answer = agentCall(credential, 'GET', '/instructions?wait=30');
    const until = Date.now() + 5000;
    while (!ctx().hub.isConnected(endpointId)) {
      assert.ok(Date.now() < until, 'the long-poll never reached the server');
      await new Promise((r) => setTimeout(r, 20));
    }
    return { answer };
  }

  const timelineOf = async (grantId: string) => (await s.api.request('GET', `/api/v1/grants/${grantId}`)).body;

  async function revokedWhileDown(outage: 'stopped' | 'frozen') {
    const { endpointId, credential, grantId } = await endpointWithGrant();
    const poll = await openPoll(endpointId, credential);
    if (outage === 'stopped') await s.stopDb();
    else s.freezeDb();

    const res = await revoke(grantId);
    assert.ok(res.status !== 0 && res.ms < BOUND_MS, `answered ${res.status} after ${res.ms} ms`);
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.body.grant, { id: grantId, state: 'revoking' });
    assert.equal(res.body.journaled, true);
    const answeredAt = Date.now();

    // The open long-poll answers with the revoke without reading the database.
    const polled = await poll.answer;
    assert.equal(polled.status, 200, polled.text);
    assert.ok(Date.now() - answeredAt < 1000, `the open poll answered ${Date.now() - answeredAt} ms after the 202`);
    const ins = polled.body.instructions.find((i: { kind: string; grantId?: string }) => i.kind === 'revoke' && i.grantId === grantId);
    assert.ok(ins, JSON.stringify(polled.body));
    assert.equal(ins.plan.grantId, grantId, 'the plan travels too, for agents that need it');
    // Acked in memory: no database needed.
    const ack = await agentCall(credential, 'POST', '/acks', { ids: [ins.id] }, BOUND_MS);
    assert.equal(ack.status, 204, ack.text);

    const [entry, ...more] = await journal();
    assert.equal(more.length, 0);
    assert.deepEqual(
      { grantId: entry.grantId, endpointId: entry.endpointId, actor: entry.actor, at: entry.at, instructionId: entry.instructionId },
      { grantId, endpointId, actor: 'admin', at: res.body.requestedAt, instructionId: ins.id },
    );
    console.log(`      ${outage}: 202 after ${res.ms} ms, poll answered ${polled.ms} ms after it opened`);
    return { grantId, endpointId, requestedAt: res.body.requestedAt as string, instructionId: ins.id as string };
  }

  async function storedOnceBack(grantId: string, requestedAt: string, instructionId: string) {
    const back = Date.now();
    while ((await journal()).length) {
      assert.ok(Date.now() - back < 15_000, 'the journal was never applied');
      await new Promise((r) => setTimeout(r, 50));
    }
    const g = await s.api.waitGrant(grantId, (x) => x.state === 'revoking', 5000);
    console.log(`      stored ${Date.now() - back} ms after the database was back`);
    const requested = g.timeline.filter((e: { type: string }) => e.type === 'grant.revoke-requested');
    assert.equal(requested.length, 1, JSON.stringify(g.timeline.map((e: { type: string }) => e.type)));
    assert.equal(requested[0].actor, 'admin');
    assert.equal(requested[0].at, requestedAt, 'the audit event carries the time the revoke was asked');
    assert.equal(requested[0].detail.journaledAt, requestedAt);
    assert.equal(requested[0].detail.instructionId, instructionId);
    const revoking = g.timeline.filter((e: { type: string }) => e.type === 'grant.revoking');
    assert.equal(revoking.length, 1);
    assert.equal(revoking[0].actor, 'admin');
    assert.ok(g.timeline.indexOf(requested[0]) < g.timeline.indexOf(revoking[0]), 'the request comes before its transition');
    const stored = await ctx().c.instructions.find({ grantId, kind: 'revoke' }).toArray();
    assert.equal(stored.length, 1, 'the revoke instruction is in the database now');
    assert.deepEqual(await journal(), [], 'the journal is cut once applied');
    return g;
  }

  it('agent connected, database stopped: 202 within 5 s, the open long-poll gets the revoke, and it is stored with its audit event once the database is back', async () => {
    const { grantId, endpointId, requestedAt, instructionId } = await revokedWhileDown('stopped');
    await s.startDb();
    await storedOnceBack(grantId, requestedAt, instructionId);
    assert.deepEqual(ctx().hub.pushed(endpointId), [], 'no longer held in memory');
    const delivered = (await timelineOf(grantId)).timeline.find((e: { type: string }) => e.type === 'grant.revoke-requested');
    assert.ok(delivered.detail.deliveredAt, 'the ack while the database was down is recorded');
  });

  it('agent connected, database frozen: the same within 5 s', async () => {
    const { grantId, requestedAt, instructionId } = await revokedWhileDown('frozen');
    // Frozen until the revoke's own database call has surely given up, its one retry included
    // (the socket timeout, then a new connection's selection and handshake), so only the journal
    // has it. A database back sooner may take that call too (replay then finds the grant revoking
    // and only adds the request's audit event, after the transition's): CI saw that with 500 ms.
    const { socketTimeoutMS, serverSelectionTimeoutMS, connectTimeoutMS } = s.config.db;
    await new Promise((r) => setTimeout(r, socketTimeoutMS + Math.max(serverSelectionTimeoutMS, connectTimeoutMS) + 1500));
    s.thawDb();
    await storedOnceBack(grantId, requestedAt, instructionId);
  });

  it('agent offline, database stopped: 503 db.unavailable within 5 s, nothing journaled, sent or stored', async () => {
    const { endpointId, grantId } = await endpointWithGrant();
    assert.ok(outageOf(ctx())?.liveGrants.get(grantId), 'the server knows the grant: only the missing agent stops the revoke');
    assert.equal(ctx().hub.isConnected(endpointId), false);
    await s.stopDb();
    const res = await revoke(grantId);
    assert.ok(res.status !== 0 && res.ms < BOUND_MS, `answered ${res.status} after ${res.ms} ms`);
    assert.equal(res.status, 503, res.text);
    assert.equal(res.body.error.id, 'db.unavailable');
    assert.equal(res.headers.get('retry-after'), String(s.config.retryAfterSeconds));
    assert.deepEqual(await journal(), []);
    assert.deepEqual(ctx().hub.pushed(endpointId), []);
    await s.startDb();
    await new Promise((r) => setTimeout(r, 1500));
    const g = await timelineOf(grantId);
    assert.equal(g.state, 'requested');
    assert.deepEqual(
      g.timeline.filter((e: { type: string }) => /revok/.test(e.type)),
      [],
    );
    assert.equal(await ctx().c.instructions.countDocuments({ grantId, kind: 'revoke' }), 0);
  });

  it('a journaled revoke survives a server restart while the database is down and is applied once when it is back', async () => {
    const { grantId, requestedAt, instructionId } = await revokedWhileDown('stopped');
    await s.stopServer().catch(() => {});
    assert.equal((await journal()).length, 1, 'still on disk');
    const t0 = Date.now();
    await assert.rejects(s.startServer(), 'the server needs its database to start');
    console.log(`      a start without the database fails after ${Date.now() - t0} ms`);
    assert.equal((await journal()).length, 1, 'a failed start leaves the journal alone');

    await s.startDb();
    await s.startServer();
    const g = await storedOnceBack(grantId, requestedAt, instructionId);
    assert.equal(g.timeline.find((e: { type: string }) => e.type === 'grant.revoke-requested').detail.deliveredAt, undefined, 'the ack time died with the process');

    await s.stopServer();
    await s.startServer();
    const again = await timelineOf(grantId);
    assert.equal(again.timeline.filter((e: { type: string }) => e.type === 'grant.revoke-requested').length, 1, 'applied once');
    assert.equal(await ctx().c.instructions.countDocuments({ grantId, kind: 'revoke' }), 1);
  });
});
