import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { accountGone, shadowOf, until } from '../support/accounts.ts';
import { ADMIN_TOKEN, enrollSandboxedAgent, grantBody, spawnAgent } from '../support/stack.ts';
import { OutageStack, timed } from '../support/outageStack.ts';

/** Checks that `want` appears in `types` in this order (other events may sit between). */
function assertInOrder(types: string[], want: string[]) {
  let i = 0;
  for (const t of types) if (t === want[i]) i++;
  assert.equal(i, want.length, `expected in order ${want.join(' → ')}\n got ${types.join(' → ')}`);
}

/**
 * A revoke is never lost: with the database stopped, the server pushes the revoke to the
 * grant's connected agent (a real agent process on a sandbox root) from memory, the account
 * is gone at once, and the database gets the revoke and its audit event once it is back.
 */
describe('end to end: revoke while the database is down, with a real agent', function () {
  this.timeout(180_000);
  let s: OutageStack;
  let agent: { root: string; endpointId: string; hostname: string; cleanup(): Promise<void> };
  let child: ChildProcess | null = null;

  before(async () => {
    s = await OutageStack.start({ leadTimeSeconds: 1 });
    const hostname = `outage-${Math.random().toString(36).slice(2, 8)}`;
    const enrolled = await enrollSandboxedAgent(s.api, hostname);
    agent = { ...enrolled, hostname };
    child = spawnAgent(enrolled.stateFile, path.join(enrolled.root, 'agent.log'));
  });
  after(async () => {
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    await agent?.cleanup();
    await s?.stop();
  });

  it('agent connected, database stopped: 202 within 5 s, the account is gone within 1 s of the revoke, and once the database is back the grant is revoked with the revoke in its audit trail (original time and actor)', async () => {
    const created = await s.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 1, 600));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id: string = created.body.grants[0].id;
    const { username } = await s.api.waitGrant(id, (g) => g.state === 'enabled' && g.username);
    await until(async () => !(await shadowOf(agent.root, username)).password.startsWith('!'), 5000, 'account enabled');
    await until(() => s.server!.ctx.hub.isConnected(agent.endpointId), 10_000, 'agent holds a long-poll');

    await s.stopDb();
    // Access ends at once, not after the database was given its chance: timed from the request.
    const asked = Date.now();
    const answer = timed(`${s.api.url}/api/v1/grants/${id}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    await until(() => accountGone(agent.root, username), 1000, 'account deleted within 1 s of the revoke');
    const gone = Date.now() - asked;
    const res = await answer;
    assert.ok(res.status !== 0 && res.ms < 5000, `answered ${res.status} after ${res.ms} ms`);
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.body.grant, { id, state: 'revoking' });
    assert.equal(res.body.journaled, true);

    await s.startDb();
    const back = Date.now();
    const g = await s.api.waitGrant(id, (x) => x.state === 'revoked', 60_000);
    console.log(`      202 after ${res.ms} ms; account gone ${gone} ms after the revoke; grant revoked ${Date.now() - back} ms after the database was back`);
    const types = g.timeline.map((e: { type: string }) => e.type);
    assertInOrder(types, ['grant.enabled', 'grant.revoke-requested', 'grant.revoking', 'agent.disabled', 'agent.removed', 'grant.revoked']);
    const requested = g.timeline.find((e: { type: string }) => e.type === 'grant.revoke-requested');
    assert.equal(requested.actor, 'admin');
    assert.equal(requested.at, res.body.requestedAt);
    assert.equal(requested.detail.journaledAt, res.body.requestedAt);
    assert.ok(requested.detail.deliveredAt, 'the agent acked it while the database was down');
    assert.equal(g.timeline.find((e: { type: string }) => e.type === 'grant.revoking').actor, 'admin');
  });

  it('agent connected, database frozen: the account is gone within 1 s of the revoke, not after the database had its chance', async () => {
    const created = await s.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 1, 600));
    const id: string = created.body.grants[0].id;
    const { username } = await s.api.waitGrant(id, (g) => g.state === 'enabled' && g.username);
    await until(async () => !(await shadowOf(agent.root, username)).password.startsWith('!'), 5000, 'account enabled');
    await until(() => s.server!.ctx.hub.isConnected(agent.endpointId), 10_000, 'agent holds a long-poll');
    s.freezeDb();
    try {
      const asked = Date.now();
      const answer = timed(`${s.api.url}/api/v1/grants/${id}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      await until(() => accountGone(agent.root, username), 1000, 'account deleted within 1 s of the revoke');
      console.log(`      account gone ${Date.now() - asked} ms after the revoke`);
      assert.equal((await answer).status, 202);
    } finally {
      s.thawDb();
    }
    await s.api.waitGrant(id, (x) => x.state === 'revoked', 60_000);
  });
});
