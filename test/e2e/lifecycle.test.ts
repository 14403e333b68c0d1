import assert from 'node:assert/strict';
import { readSandboxEntry } from '../support/sandbox.ts';
import { accountGone, managedAccounts, runAs, shadowOf, uidOf, until } from '../support/accounts.ts';
import { enrollAgent, grantBody, startStack, type AgentProc, type Stack } from '../support/stack.ts';

/** Checks that `want` appears in `types` in this order (other events may sit between). */
function assertInOrder(types: string[], want: string[]) {
  let i = 0;
  for (const t of types) if (t === want[i]) i++;
  assert.equal(i, want.length, `expected in order ${want.join(' → ')}\n got ${types.join(' → ')}`);
}

describe('end to end: server, FerretDB and a real agent on a sandbox root', function () {
  this.timeout(120_000);
  let stack: Stack;
  let agent: AgentProc;
  /** Processes run as a grant's user: logoff should end them; killed here in case it did not. */
  const sessions: { kill(): void }[] = [];

  before(async () => {
    stack = await startStack({ leadTimeSeconds: 2 });
  });
  after(() => stack?.stop());
  beforeEach(async () => {
    if (!stack.server) await stack.startServer();
    agent = await enrollAgent(stack);
    agent.start();
  });
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.kill();
    await agent.cleanup();
  });

  const managed = () => managedAccounts(agent.root);

  it('creates the account disabled, enables it at start minus the lead time, logs off and deletes it at the end', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 5, 5));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = res.body.grants[0].id;
    const enableAt = Date.parse(res.body.grants[0].enableAt);
    const endAt = Date.parse(res.body.grants[0].endAt);

    const provisioned = await stack.api.waitGrant(id, (g) => g.state === 'provisioned' && g.username);
    const name: string = provisioned.username;
    assert.ok(Date.now() < enableAt, 'provisioned well before enable time');
    const disabled = await shadowOf(agent.root, name);
    assert.match(disabled.password, /^!/, 'password locked while disabled');
    assert.equal(disabled.expire, '1', 'account expired while disabled');
    assert.ok((await readSandboxEntry(agent.root, name)).groups.some((l) => l.startsWith('sudo:')), 'in the Administrators group (sudo)');

    await until(async () => !(await shadowOf(agent.root, name)).password.startsWith('!'), 10_000, 'enabled');
    const lateness = Date.now() - enableAt;
    assert.ok(lateness >= 0 && lateness < 1500, `enabled ${lateness} ms after enableAt`);
    assert.notEqual((await shadowOf(agent.root, name)).expire, '1');

    const session = await runAs(await uidOf(agent.root, name));
    sessions.push(session);
    await until(() => accountGone(agent.root, name), 15_000, 'account deleted');
    const removalLateness = Date.now() - endAt;
    assert.ok(removalLateness < 2000, `removed ${removalLateness} ms after end`);
    await until(() => !session.alive(), 2000, "the user's process is killed");

    const g = await stack.api.waitGrant(id, (x) => x.state === 'removed');
    const types = g.timeline.map((e: { type: string }) => e.type);
    assertInOrder(types, ['grant.requested', 'instruction.delivered', 'agent.created', 'grant.provisioned', 'agent.enabled', 'grant.enabled', 'agent.disabled', 'agent.logged-off', 'agent.removed', 'grant.removed']);
    const loggedOff = g.timeline.find((e: { type: string }) => e.type === 'agent.logged-off');
    assert.match(loggedOff.detail.detail, /^[1-9]\d* process/);
    assert.deepEqual(await managed(), []);
  });

  it('rejects one malformed instruction alone: that grant fails with the reason, the next one runs', async () => {
    await agent.kill();
    const bad = (await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 20, 5))).body.grants[0].id;
    // A grant stored before dates were bounded: its year no longer fits the protocol's dates.
    const { c } = stack.server!.ctx;
    const mangled = await c.instructions.updateMany({ grantId: bad }, { $set: { 'plan.startAt': '+010000-01-01T22:59:00.000Z' } });
    assert.equal(mangled.modifiedCount, 1);
    const good = (await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 20, 5))).body.grants[0].id;
    agent.start();
    await stack.api.waitGrant(good, (g) => g.state === 'provisioned');
    const failed = await stack.api.waitGrant(bad, (g) => g.state === 'failed');
    assert.match(failed.reason, /instruction rejected by the agent: plan\.startAt/);
    assert.equal(await c.instructions.countDocuments({ grantId: bad, ackedAt: null }), 0, 'the rejected instruction is acked, not sent again');
  });

  it('survives an agent killed between create and enable', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 6, 4));
    const id = res.body.grants[0].id;
    const { username } = await stack.api.waitGrant(id, (g) => g.state === 'provisioned' && g.username);
    await agent.kill();
    await until(() => Date.now() > Date.parse(res.body.grants[0].enableAt) + 500, 10_000, 'enable time passes');
    agent.start();
    await stack.api.waitGrant(id, (g) => g.state === 'enabled' || g.state === 'removed');
    const g = await stack.api.waitGrant(id, (x) => x.state === 'removed');
    assert.ok(g.timeline.some((e: { type: string }) => e.type === 'agent.enabled'), 'enabled after the restart');
    assert.ok(await accountGone(agent.root, username));
    assert.deepEqual(await managed(), []);
  });

  it('removes an expired account first thing at restart, with the server unreachable', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 1, 3));
    const id = res.body.grants[0].id;
    const { username } = await stack.api.waitGrant(id, (g) => g.state === 'enabled' && g.username);
    await agent.kill();
    await stack.stopServer();
    await until(() => Date.now() > Date.parse(res.body.grants[0].endAt) + 1000, 10_000, 'end passes');
    assert.equal(await accountGone(agent.root, username), false, 'still there while the agent is down');
    const restartedAt = Date.now();
    agent.start();
    await until(() => accountGone(agent.root, username), 10_000, 'removed at restart');
    const took = Date.now() - restartedAt;
    await stack.startServer();
    const g = await stack.api.waitGrant(id, (x) => x.state === 'removed');
    assert.ok(g.timeline.some((e: { type: string }) => e.type === 'agent.removed'), 'the queued report arrived once the server was back');
    assert.ok(took < 5000, `removed ${took} ms after restart`);
    assert.deepEqual(await managed(), []);
  });

  it('keeps pending jobs across a server restart', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 6, 3));
    const id = res.body.grants[0].id;
    const { username } = await stack.api.waitGrant(id, (g) => g.state === 'provisioned' && g.username);
    // With the agent down, only the server's own stored jobs can act on the deadlines.
    await agent.kill();
    await stack.stopServer();
    const restartAt = new Date();
    await new Promise((r) => setTimeout(r, 1000));
    await stack.startServer();
    await until(() => Date.now() > Date.parse(res.body.grants[0].endAt) + 1000, 15_000, 'end passes');
    const queued = await stack.server!.ctx.c.instructions.find({ grantId: id, createdAt: { $gt: restartAt } }).toArray();
    assert.deepEqual(queued.map((q) => q.kind).sort(), ['enable', 'expire'], 'the enable and expire jobs ran after the restart');
    agent.start();
    await stack.api.waitGrant(id, (x) => x.state === 'removed');
    assert.ok(await accountGone(agent.root, username));
  });

  it('alerts with revocation-failed when the endpoint does not confirm deletion, and closes the grant when it does', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 1, 2));
    const id = res.body.grants[0].id;
    const { username } = await stack.api.waitGrant(id, (g) => g.state === 'enabled');
    await agent.kill();
    // Verify checks wait for agents to report after a server start (scheduler/startupHold.ts).
    const failed = await stack.api.waitGrant(id, (g) => g.state === 'revocation-failed', 40_000);
    assert.match(failed.reason, /has not confirmed deletion/);
    assert.ok(Date.now() - Date.parse(failed.endAt) >= stack.config.verifyGraceSeconds * 1000, 'only after the grace period');
    assert.match(await stack.serverLog(), /ALERT grant revocation failed/);
    agent.start();
    await stack.api.waitGrant(id, (g) => g.state === 'removed');
    assert.ok(await accountGone(agent.root, username));
  });

  it('applies an instruction delivered twice only once', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 3, 4));
    const id = res.body.grants[0].id;
    await stack.api.waitGrant(id, (g) => g.state === 'provisioned' || g.state === 'enabled');
    const { c, hub } = stack.server!.ctx;
    // Lose the ack: the server delivers the very same instruction again.
    await c.instructions.updateMany({ grantId: id, kind: 'provision' }, { $set: { ackedAt: null } });
    hub.notify(agent.endpointId);
    await until(async () => (await c.instructions.countDocuments({ grantId: id, ackedAt: null })) === 0, 10_000, 're-acked');
    assert.equal((await managed()).length, 1, 'still exactly one account');
    const g = await stack.api.waitGrant(id, (x) => x.state === 'removed');
    assert.equal(g.timeline.filter((e: { type: string }) => e.type === 'agent.created').length, 1);
    assert.deepEqual(await managed(), []);
  });

  it('revokes a grant early: the user is logged off and the account deleted now', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 0, 600));
    const id = res.body.grants[0].id;
    const { username } = await stack.api.waitGrant(id, (g) => g.state === 'enabled');
    const session = await runAs(await uidOf(agent.root, username));
    sessions.push(session);
    const revoked = await stack.api.request('POST', `/api/v1/grants/${id}/revoke`);
    assert.equal(revoked.status, 200);
    await until(() => accountGone(agent.root, username), 5000, 'deleted on revoke');
    await until(() => !session.alive(), 2000, 'process killed');
    await stack.api.waitGrant(id, (x) => x.state === 'revoked');
    const again = await stack.api.request('POST', `/api/v1/grants/${id}/revoke`);
    assert.equal(again.status, 409);
  });

  it('lists endpoints with online status and filters grants', async () => {
    await until(async () => {
      const { body } = await stack.api.request('GET', '/api/v1/endpoints');
      return body.endpoints.some((e: { id: string; online: boolean }) => e.id === agent.endpointId && e.online);
    }, 10_000, 'agent online');
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 60, 60, { email: 'bob@example.com' }));
    const { body } = await stack.api.request('GET', `/api/v1/grants?email=bob@example.com&endpoint=${agent.hostname}`);
    assert.deepEqual(body.grants.map((g: { id: string }) => g.id), [res.body.grants[0].id]);
    const none = await stack.api.request('GET', '/api/v1/grants?email=bob@example.com&state=removed');
    assert.equal(none.body.grants.length, 0);
    await stack.api.request('POST', `/api/v1/grants/${res.body.grants[0].id}/revoke`);
    await stack.api.waitGrant(res.body.grants[0].id, (x) => x.state === 'revoked');
  });
});
