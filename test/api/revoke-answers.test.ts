import assert from 'node:assert/strict';
import { createUser } from '../../server/web/users.ts';
import { ConsoleClient } from './consoleClient.ts';
import { ADMIN_TOKEN, grantBody } from '../support/stack.ts';
import { OutageStack, timed, type Timed } from '../support/outageStack.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What a revoke answers when the database is slow or gone, and that the answer is
 * true: a revoke still running when its time is up is not refused ("nothing done")
 * but accepted and finished once the database answers; the console's revoke is the
 * API's (journaled and pushed to a connected agent); a long-poll whose database read
 * fails still delivers a revoke pushed while it read. The agent is played by raw
 * requests with the endpoint's credential (see revoke-journal.test.ts).
 */
describe('revoke answers while the database is slow or down', function () {
  this.timeout(180_000);
  let s: OutageStack;
  const ctx = () => s.server!.ctx;

  before(async () => {
    s = await OutageStack.start();
    await createUser(ctx(), { email: 'rev@example.com', role: 'admin', password: 'revoke password 1' }, 'test');
  });
  after(() => s?.stop());
  afterEach(async () => {
    s.thawDb();
    await s.startDb();
  });

  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const revoke = (id: string) => timed(`${s.api.url}/api/v1/grants/${id}/revoke`, { method: 'POST', headers: admin });

  function agentCall(credential: string, method: string, p: string, body?: unknown, limitMs = 30_000) {
    const headers: Record<string, string> = { authorization: `Bearer ${credential}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    return timed(`${s.api.url}/agent/v1${p}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }, limitMs);
  }

  /** An enrolled endpoint (no agent process) whose grant's plan was delivered and acked. */
  async function endpointWithGrant(): Promise<{ endpointId: string; credential: string; grantId: string }> {
    const { body } = await s.api.request('POST', '/api/v1/enrollment-tokens');
    const hostname = `ans-${Math.random().toString(36).slice(2, 8)}`;
    const { endpointId, credential } = (await s.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os: 'linux', agentVersion: 't' })).body;
    const grantId: string = (await s.api.request('POST', '/api/v1/grants', grantBody(endpointId, 600, 600))).body.grants[0].id;
    const first = await agentCall(credential, 'GET', '/instructions?wait=0');
    const ids = first.body.instructions.map((i: { id: string }) => i.id);
    assert.equal((await agentCall(credential, 'POST', '/acks', { ids })).status, 204);
    return { endpointId, credential, grantId };
  }

  async function openPoll(endpointId: string, credential: string): Promise<{ answer: Promise<Timed> }> {
    const answer = agentCall(credential, 'GET', '/instructions?wait=30');
    const until = Date.now() + 5000;
    while (!ctx().hub.isConnected(endpointId)) {
      assert.ok(Date.now() < until, 'the long-poll never reached the server');
      await sleep(20);
    }
    return { answer };
  }

  async function eventually(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
    const until = Date.now() + ms;
    while (!(await check())) {
      assert.ok(Date.now() < until, `never: ${what}`);
      await sleep(100);
    }
  }

  it('agent offline, database slower than the revoke may wait: 202 pending (not 503 "nothing done"), and the revoke is finished once it answers', async () => {
    const { grantId } = await endpointWithGrant();
    s.freezeDb();
    // Thawed after the revoke's time is up, before the driver gives its call up: the call then goes on.
    setTimeout(() => s.thawDb(), 2800);
    const res = await revoke(grantId);
    console.log(`      slow database, agent offline: ${res.status} after ${res.ms} ms ${res.text.slice(0, 160)}`);
    assert.equal(res.status, 202, res.text);
    assert.ok(res.ms < 5000);
    assert.equal(res.body.pending, true);
    assert.deepEqual(res.body.grant, { id: grantId, state: 'revoking' });
    await eventually('the grant is revoking with its revoke queued and its deletion check due', async () => {
      const g = await ctx().c.grants.findOne({ _id: grantId });
      const queued = await ctx().c.instructions.countDocuments({ grantId, kind: 'revoke' });
      const verify = await s.server!.db.collection('agendaJobs').countDocuments({ name: 'grant.verify', 'data.grantId': grantId, nextRunAt: { $lte: new Date(Date.now() + 600_000) } });
      return g?.state === 'revoking' && queued >= 1 && verify >= 1;
    });
    const types = (await s.api.request('GET', `/api/v1/grants/${grantId}`)).body.timeline.map((e: { type: string }) => e.type);
    assert.equal(types.filter((t: string) => t === 'grant.revoking').length, 1, JSON.stringify(types));
  });

  it('console: Revoke with the database stopped and the agent connected is journaled and pushed, and the page says so', async () => {
    const { endpointId, credential, grantId } = await endpointWithGrant();
    const web = new ConsoleClient(s.api.url);
    assert.equal((await web.login('rev@example.com', 'revoke password 1')).status, 303);
    const confirm = await web.get(`/grants/${grantId}/revoke`);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(confirm.text)![1]!;
    const poll = await openPoll(endpointId, credential);
    await s.stopDb();
    const t0 = Date.now();
    const page = await web.request('POST', `/grants/${grantId}/revoke`, { _csrf: csrf });
    console.log(`      console revoke, database stopped: ${page.status} after ${Date.now() - t0} ms`);
    assert.equal(page.status, 202, page.text.slice(0, 400));
    assert.match(page.text, /id="revoke-journaled"/);
    assert.match(page.text, /sent to the endpoint/);
    const polled = await poll.answer;
    assert.equal(polled.status, 200, polled.text);
    assert.ok(polled.body.instructions.some((i: { kind: string; grantId?: string }) => i.kind === 'revoke' && i.grantId === grantId), polled.text);
    await s.startDb();
    await eventually('stored once the database is back', async () => (await ctx().c.grants.findOne({ _id: grantId }))?.state === 'revoking');
    const requested = (await s.api.request('GET', `/api/v1/grants/${grantId}`)).body.timeline.filter((e: { type: string }) => e.type === 'grant.revoke-requested');
    assert.equal(requested.length, 1);
    assert.equal(requested[0].actor, 'user:rev@example.com');
  });

  it('a long-poll whose database read fails still delivers the revoke pushed while it was reading (not 503)', async () => {
    const { endpointId, credential, grantId } = await endpointWithGrant();
    s.freezeDb();
    // The poll's read takes the (single) connection and waits on the frozen database for the
    // socket timeout; the revoke, queued behind it, runs out of time first and is pushed.
    const poll = agentCall(credential, 'GET', '/instructions?wait=30');
    await sleep(100);
    const res = await revoke(grantId);
    assert.equal(res.status, 202, res.text);
    const polled = await poll;
    console.log(`      poll: ${polled.status} after ${polled.ms} ms; revoke ${res.status} after ${res.ms} ms`);
    assert.equal(polled.status, 200, polled.text);
    assert.ok(polled.body.instructions.some((i: { kind: string; grantId?: string }) => i.kind === 'revoke' && i.grantId === grantId), polled.text);
    assert.ok(ctx().hub.pushed(endpointId).length === 1, 'held until acked');
  });
});
