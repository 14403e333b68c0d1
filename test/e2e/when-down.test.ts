/**
 * When things are down: a server restart with agents' reports still queued, a
 * grant that recovers from revocation-failed, and an agent frozen across a
 * grant's enable and end. Real server, FerretDB and agent processes.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { accountGone, until } from '../support/accounts.ts';
import { enrollAgent, enrollSandboxedAgent, grantBody, spawnAgent, startStack, type AgentProc, type Stack } from '../support/stack.ts';

const types = (g: { timeline: { type: string }[] }) => g.timeline.map((e) => e.type);

describe('end to end: when things are down', function () {
  this.timeout(120_000);
  let stack: Stack;
  let agent: AgentProc;

  before(async () => {
    stack = await startStack({ leadTimeSeconds: 2 });
  });
  after(() => stack?.stop());
  beforeEach(async () => {
    if (!stack.server) await stack.startServer();
    agent = await enrollAgent(stack);
    agent.start();
  });
  afterEach(() => agent.cleanup());

  it('after a server restart, waits for the agents before checking deletions: no false revocation-failed', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 1, 3));
    const id = res.body.grants[0].id;
    const endAt = Date.parse(res.body.grants[0].endAt);
    const { username } = await stack.api.waitGrant(id, (g) => g.state === 'enabled' && g.username);
    // The server goes away; the agent removes the account on time and queues its reports.
    await stack.stopServer();
    await until(() => accountGone(agent.root, username), 10_000, 'the agent removes the account at the end');
    // The verify job is overdue when the server comes back.
    await until(() => Date.now() > endAt + (stack.config.verifyGraceSeconds + 1) * 1000, 15_000, 'the verify time passes');
    await stack.startServer();
    const g = await stack.api.waitGrant(id, (x) => x.state === 'removed', 60_000);
    assert.ok(types(g).includes('agent.removed'), 'the queued report arrived');
    assert.deepEqual(types(g).filter((t) => t === 'grant.revocation-failed'), [], `no false alarm: ${types(g).join(' → ')}`);
    assert.doesNotMatch(await stack.serverLog(), new RegExp(`ALERT grant revocation failed.*${id}|${id}.*ALERT grant revocation failed`));
  });

  it('does not call an endpoint offline at a step that falls due while the server was down, once its agent is back', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 6, 60));
    const id = res.body.grants[0].id;
    await stack.api.waitGrant(id, (g) => g.state === 'provisioned');
    await stack.stopServer();
    // Down longer than "heard from lately" (long-poll + 10 s) lasts: the last-seen time stored at
    // the stop no longer makes the endpoint look online. The enable job is overdue at the start;
    // the agent enabled the account on its own meanwhile.
    await new Promise((r) => setTimeout(r, (stack.config.longPollSeconds + 12) * 1000));
    await stack.startServer();
    await stack.api.waitGrant(id, (g) => g.state === 'enabled', 30_000);
    await new Promise((r) => setTimeout(r, (stack.config.longPollSeconds + 17) * 1000));
    assert.deepEqual(types(await stack.api.grant(id)).filter((t) => t === 'endpoint.offline-at-due-step'), []);
    await stack.api.request('POST', `/api/v1/grants/${id}/revoke`);
  });

  it('clears the failure reason when a grant recovers from revocation-failed (the audit keeps it)', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 1, 2));
    const id = res.body.grants[0].id;
    await stack.api.waitGrant(id, (g) => g.state === 'enabled');
    await agent.kill();
    const failed = await stack.api.waitGrant(id, (g) => g.state === 'revocation-failed', 20_000);
    assert.match(failed.reason, /has not confirmed deletion/);
    agent.start();
    const g = await stack.api.waitGrant(id, (x) => x.state === 'removed');
    assert.equal(g.reason, null, 'the grant no longer says why it failed');
    const alarm = g.timeline.find((e: { type: string }) => e.type === 'grant.revocation-failed');
    assert.match(alarm.detail.reason, /has not confirmed deletion/, 'the audit trail still does');
  });

  it('says why a grant was never enabled: the endpoint was unresponsive across its enable time and end', async () => {
    // An agent of our own, to freeze it with SIGSTOP.
    await agent.kill();
    const own = await enrollSandboxedAgent(stack.api, `frozen-${Math.random().toString(36).slice(2, 8)}`);
    let child: ChildProcess = spawnAgent(own.stateFile, path.join(own.root, 'agent.log'));
    try {
      const res = await stack.api.request('POST', '/api/v1/grants', grantBody(own.endpointId, 5, 3));
      const id = res.body.grants[0].id;
      const { enableAt, endAt } = res.body.grants[0];
      const { username } = await stack.api.waitGrant(id, (g) => g.state === 'provisioned' && g.username);
      assert.ok(Date.now() < Date.parse(enableAt), 'provisioned before the enable time');
      child.kill('SIGSTOP');
      const frozenAt = Date.now();
      // Past the end and the verify grace (a true alarm), and longer than the online grace.
      await stack.api.waitGrant(id, (g) => g.state === 'revocation-failed', 30_000);
      const grace = (stack.config.longPollSeconds + 10) * 1000;
      await until(() => Date.now() > frozenAt + grace + 1000, 30_000, 'silent for longer than the online grace');
      child.kill('SIGCONT');
      // The note is written just after the final state: wait for both.
      const g = await stack.api.waitGrant(id, (x) => x.state === 'removed' && types(x).includes('grant.never-enabled'), 30_000);
      assert.ok(await accountGone(own.root, username));
      assert.ok(!types(g).includes('agent.enabled'), 'never enabled, correctly');
      const ev = g.timeline.find((e: { type: string }) => e.type === 'grant.never-enabled');
      assert.ok(ev, `a grant.never-enabled event: ${types(g).join(' → ')}`);
      const { from, to } = ev.detail.unresponsive;
      assert.ok(Date.parse(from) <= frozenAt, `silent from ${from}, frozen at ${new Date(frozenAt).toISOString()}`);
      assert.ok(Date.parse(from) > frozenAt - grace, 'from the last time it was heard');
      assert.ok(Date.parse(to) >= Date.parse(endAt), `silent until ${to}, after the end ${endAt}`);
      assert.equal(ev.summary, `never enabled: the endpoint was unresponsive from ${from} to ${to}`);
      assert.equal(g.neverEnabled, ev.summary);
      assert.ok(types(g).indexOf('grant.never-enabled') > types(g).indexOf('grant.removed'));
    } finally {
      const c = child;
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGCONT');
        c.kill('SIGKILL');
        await exited;
      }
      await own.cleanup();
    }
  });
});
