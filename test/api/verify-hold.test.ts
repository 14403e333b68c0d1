import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startupSettleMs } from '../../server/scheduler/startupHold.ts';
import { grantBody } from '../support/stack.ts';
import { OutageStack, timed } from '../support/outageStack.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * After a database outage (the server stayed up), deletion checks wait until the agents
 * have had time to send what the outage made them queue, as after a server start: an
 * agent that removed an account while the database was down, and whose report is still
 * in its retry backoff when the database is back, raises no false `revocation-failed`.
 * The agent is played by raw requests, its report sent a few seconds after the check
 * would have run.
 */
describe('deletion checks after a database outage', function () {
  this.timeout(180_000);
  let s: OutageStack;

  before(async () => {
    s = await OutageStack.start();
  });
  after(() => s?.stop());

  it('an agent that removed the account while the database was down and reports after it is back raises no revocation-failed', async () => {
    const listening = Date.now();
    const { body } = await s.api.request('POST', '/api/v1/enrollment-tokens');
    const { endpointId, credential } = (await s.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'held-box', os: 'linux', agentVersion: 't' })).body;
    const agent = (method: string, p: string, b?: unknown) =>
      timed(`${s.api.url}/agent/v1${p}`, { method, headers: { authorization: `Bearer ${credential}`, ...(b === undefined ? {} : { 'content-type': 'application/json' }) }, ...(b === undefined ? {} : { body: JSON.stringify(b) }) });
    const report = (grantId: string, type: string) => agent('POST', '/reports', { reports: [{ id: randomUUID(), grantId, type, at: new Date().toISOString() }] });

    // The grant ends once the hold after this start is over, so only the outage can hold its check.
    const endIn = Math.ceil((startupSettleMs(s.config) - (Date.now() - listening)) / 1000) + 3;
    const created = await s.api.request('POST', '/api/v1/grants', grantBody(endpointId, 0, endIn));
    const grantId: string = created.body.grants[0].id;
    const endAt = Date.parse(created.body.grants[0].endAt);
    const verifyAt = endAt + s.config.verifyGraceSeconds * 1000;
    const polled = await agent('GET', '/instructions?wait=0');
    await agent('POST', '/acks', { ids: polled.body.instructions.map((i: { id: string }) => i.id) });
    assert.equal((await report(grantId, 'created')).status, 200);
    assert.equal((await report(grantId, 'enabled')).status, 200);

    // At the end the agent removes the account; the database is down, so its report is refused.
    await sleep(endAt - Date.now() + 500);
    await s.stopDb();
    const refused = await report(grantId, 'removed');
    assert.equal(refused.status, 503, refused.text);

    // Back after the check fell due; the agent's retry comes 3 s later (its backoff).
    await sleep(verifyAt - Date.now() + 2000);
    await s.startDb();
    for (let t0 = Date.now(); (await timed(`${s.api.url}/healthz`)).status !== 200; ) {
      assert.ok(Date.now() - t0 < 10_000, 'the database never came back');
      await sleep(100);
    }
    await sleep(3000);
    const sent = await report(grantId, 'removed');
    assert.equal(sent.status, 200, sent.text);

    const g = await s.api.waitGrant(grantId, (x) => x.state === 'removed', 10_000);
    const types = g.timeline.map((e: { type: string }) => e.type);
    assert.ok(!types.includes('grant.revocation-failed'), `false alarm: ${JSON.stringify(types)}`);
    // The check is not lost: it waits, then runs (and finds the grant removed).
    const log = await s.serverLog();
    assert.match(log, /deletion check held/);
  });
});
