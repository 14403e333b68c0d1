import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../agent/os/exec.ts';
import { createUser } from '../../server/web/users.ts';
import { ConsoleClient } from '../api/consoleClient.ts';
import { runAs, shadowOf, until } from '../support/accounts.ts';
import { enrollAgent, grantBody, startStack, type AgentProc, type Stack } from '../support/stack.ts';

/**
 * elevate-account end to end: server, FerretDB and a real agent process on a sandbox root, where
 * the test makes the person's own account (not ours) as an admin would have it.
 */
describe('end to end: elevate an existing account', function () {
  this.timeout(120_000);
  let stack: Stack;
  let agent: AgentProc;
  const sessions: { kill(): void }[] = [];
  /** Sandbox uids far from the ones the agent hands its temporary accounts. */
  let uid = 2_099_000 + randomInt(500);

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

  async function person(name: string, groups: string[] = []): Promise<number> {
    const u = uid++;
    await run('useradd', ['--prefix', agent.root, '-u', String(u), '-m', '-s', '/bin/bash', ...(groups.length ? ['-G', groups.join(',')] : []), '--', name]);
    return u;
  }
  const sudoers = async () => ((await readFile(path.join(agent.root, 'etc', 'group'), 'utf8')).split('\n').find((l) => l.startsWith('sudo:')) ?? '').split(':')[3]?.split(',').filter(Boolean) ?? [];
  /** The endpoint's inventory once it lists `name` (the agent sends it before each poll). */
  const inventoried = (name: string) =>
    until(async () => !!(await stack.server!.ctx.c.endpoints.findOne({ _id: agent.endpointId }))?.accounts?.some((a) => a.name === name), 15_000, `${name} in the inventory`);
  const elevate = (account: string, startIn: number, seconds: number, extra: Record<string, unknown> = {}) =>
    stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, startIn, seconds, { operation: 'elevate-account', account, ...extra }));

  it('puts the account in sudo at start minus the lead time, ends its processes and takes it out at the end; the audit says so', async () => {
    const u = await person('pat');
    await inventoried('pat');
    const res = await elevate('pat', 3, 4);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = res.body.grants[0].id;
    await stack.api.waitGrant(id, (g) => g.state === 'enabled', 15_000);
    assert.deepEqual(await sudoers(), ['pat']);
    const s = await runAs(u);
    sessions.push(s);
    const g = await stack.api.waitGrant(id, (x) => x.state === 'removed', 20_000);
    assert.deepEqual(await sudoers(), []);
    assert.equal(s.alive(), false, 'logoff (the default) ended the account’s process');
    const types = g.timeline.map((e: { type: string }) => e.type);
    for (const t of ['grant.requested', 'agent.created', 'agent.enabled', 'agent.disabled', 'agent.logged-off', 'agent.removed']) assert.ok(types.includes(t), `${t} in ${types.join(', ')}`);
    const enabled = g.timeline.find((e: { type: string }) => e.type === 'agent.enabled');
    assert.match(enabled.detail.detail, /was a member before: no/);
    assert.equal(g.wasMember, false, 'the baseline is kept on the grant');
    assert.match((await readFile(path.join(agent.root, 'etc', 'passwd'), 'utf8')), /^pat:/m, 'the account itself is kept');
  });

  it('keeps a membership that predates the grant', async () => {
    await person('quinn', ['sudo']);
    await inventoried('quinn');
    const res = await elevate('quinn', 0, 3);
    const id = res.body.grants[0].id;
    await stack.api.waitGrant(id, (g) => g.state === 'removed', 20_000);
    assert.deepEqual(await sudoers(), ['quinn']);
  });

  it('fails the grant with the agent’s reason for an account the endpoint does not have', async () => {
    await inventoried('root');
    const res = await elevate('nosuchuser', 0, 30);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const g = await stack.api.waitGrant(res.body.grants[0].id, (x) => x.state === 'failed', 15_000);
    assert.match(g.reason, /no local account nosuchuser on this endpoint/);
  });

  it('an agent killed during the window and restarted after the end, with the server down, takes the membership away first thing', async () => {
    await person('rene');
    await inventoried('rene');
    const res = await elevate('rene', 0, 4);
    const id = res.body.grants[0].id;
    await stack.api.waitGrant(id, (g) => g.state === 'enabled', 15_000);
    await agent.kill();
    await stack.stopServer();
    const end = Date.parse(res.body.grants[0].endAt);
    await new Promise((r) => setTimeout(r, Math.max(0, end - Date.now()) + 500));
    assert.deepEqual(await sudoers(), ['rene'], 'nothing took it away while the agent was down (Linux has no backstop for a membership)');
    const restarted = Date.now();
    agent.start();
    await until(async () => (await sudoers()).length === 0, 10_000, 'membership removed');
    console.log(`      membership removed ${Date.now() - restarted} ms after the agent started, server down`);
    await stack.startServer();
    await stack.api.waitGrant(id, (g) => g.state === 'removed', 30_000);
  });

  it('guard: an account made and put in sudo during the window is out of sudo and locked at the end, and audited', async () => {
    await person('sam');
    await inventoried('sam');
    const res = await elevate('sam', 0, 4);
    const id = res.body.grants[0].id;
    await stack.api.waitGrant(id, (g) => g.state === 'enabled', 15_000);
    await run('useradd', ['--prefix', agent.root, '-u', String(uid++), '-G', 'sudo', '--', 'backdoor']);
    const g = await stack.api.waitGrant(id, (x) => x.state === 'removed' && x.timeline.some((e: { type: string }) => e.type === 'guard.rogue-admin'), 20_000);
    assert.deepEqual(await sudoers(), []);
    assert.equal((await shadowOf(agent.root, 'backdoor')).expire, '1');
    const finding = JSON.parse(g.timeline.find((e: { type: string }) => e.type === 'guard.rogue-admin').detail.detail);
    assert.deepEqual([finding.account, finding.group, finding.madeInWindow], ['backdoor', 'sudo', true]);
    assert.match(finding.action, /removed from the group and locked/);
    // The dashboard's "Needs attention" names it, on the grant (which has ended).
    await createUser(stack.server!.ctx, { email: `guard-${uid}@example.com`, role: 'auditor', password: 'guard password 1' }, 'test');
    const web = new ConsoleClient(stack.api.url);
    assert.equal((await web.login(`guard-${uid}@example.com`, 'guard password 1')).status, 303);
    const dashboard = await web.get('/');
    assert.match(dashboard.text, /rogue admin [^<]*backdoor in sudo: removed from the group and locked/);
  });
});
