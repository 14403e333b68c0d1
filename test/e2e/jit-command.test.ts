import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmod, readFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../../agent/os/exec.ts';
import { localDir } from '../../protocol/localPaths.ts';
import { createUser } from '../../server/web/users.ts';
import { runAs, uidOf, until } from '../support/accounts.ts';
import { enrollAgent, grantBody, startStack, type AgentProc, type Stack } from '../support/stack.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

/**
 * The `jit` command of the person at the endpoint, end to end: a real agent on a sandbox root,
 * the command run as the sandbox's users (their uids, no root), the server recording what they did.
 */
describe('end to end: the jit command at the endpoint', function () {
  this.timeout(120_000);
  let stack: Stack;
  let agent: AgentProc;
  let uid = 2_098_000 + randomInt(500);

  before(async () => {
    stack = await startStack({ leadTimeSeconds: 2, requests: { expireAfterMinutes: 60, reasonRequired: true, reasonMinLength: 10, maxMinutes: 120, groups: ['Administrators', 'Users'] } });
  });
  after(() => stack?.stop());
  beforeEach(async () => {
    agent = await enrollAgent(stack);
    // Users must reach the agent's socket under the sandbox root (made 0700): search, not list.
    await chmod(agent.root, 0o711);
    agent.start();
  });
  afterEach(() => agent.cleanup());

  async function person(name: string): Promise<number> {
    const u = uid++;
    await run('useradd', ['--prefix', agent.root, '-u', String(u), '-m', '-s', '/bin/bash', '--', name]);
    return u;
  }
  const sudoers = async () => ((await readFile(path.join(agent.root, 'etc', 'group'), 'utf8')).split('\n').find((l) => l.startsWith('sudo:')) ?? '').split(':')[3]?.split(',').filter(Boolean) ?? [];

  /** Runs `jit ARGS` as uid (its own gid), against this test's agent. */
  function jit(asUid: number, ...args: string[]): Promise<{ code: number; out: string; err: string; json: any }> {
    return new Promise((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', 'test/support/jitAs.ts', String(asUid), String(asUid), ...args], {
        cwd: REPO,
        env: { ...process.env, JIT_AGENT_DIR: localDir('linux', agent.root), TZ: 'UTC' },
      });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('exit', (code) => {
        let json: unknown;
        try {
          json = JSON.parse(out);
        } catch {
          json = undefined;
        }
        resolve({ code: code ?? -1, out, err, json });
      });
    });
  }

  it('shows a person their own grant and the time left; another user sees none and cannot end it; the person ends it and the rights are gone within 1 s', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await until(async () => !!(await stack.server!.ctx.c.endpoints.findOne({ _id: agent.endpointId }))?.accounts?.some((a) => a.name === 'alice'), 15_000, 'alice in the inventory');
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 0, 90, { operation: 'elevate-account', account: 'alice' }));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = res.body.grants[0].id;
    await stack.api.waitGrant(id, (g) => g.state === 'enabled', 15_000);
    await until(async () => (await sudoers()).includes('alice'), 5_000, 'alice in sudo');

    const asked = Date.now();
    const status = await jit(alice, 'status', '--json');
    const got = Date.now();
    assert.equal(status.code, 0, status.err);
    assert.equal(status.json.user, 'alice');
    assert.equal(status.json.hostname, agent.hostname);
    assert.equal(status.json.grants.length, 1);
    assert.deepEqual(status.json.requests, [], 'no requests of hers');
    const g = status.json.grants[0];
    assert.deepEqual([g.grantId, g.operation, g.account, g.group, g.state, g.atEnd], [id, 'elevate-account', 'alice', 'Administrators', 'active', 'logoff']);
    const server = await stack.api.grant(id);
    assert.equal(Date.parse(g.endAt), Date.parse(server.endAt));
    // The agent's clock when it answered: within the call (±1 s), so end - now is the time left.
    const now = Date.parse(status.json.now);
    assert.ok(now >= asked - 1000 && now <= got + 1000, `answered at ${status.json.now}, asked ${asked}..${got}`);

    const human = await jit(alice, 'status');
    const shownAt = Date.now();
    assert.equal(human.code, 0, human.err);
    assert.match(human.out, new RegExp(`^alice on ${agent.hostname}:`));
    const left = /Administrators for your account alice: active, ends .*, in (\d+) min (\d+) s; at the end you will be logged off/.exec(human.out);
    assert.ok(left, human.out);
    const shownMs = (Number(left[1]) * 60 + Number(left[2])) * 1000;
    const trueMs = Date.parse(server.endAt) - shownAt;
    // Shown at most the command's run (a tsx start, ~1 s) before shownAt, rounded to the second.
    assert.ok(shownMs >= trueMs - 1000 && shownMs <= trueMs + 2500, `shown ${shownMs} ms left, ${trueMs} ms true`);

    const other = await jit(bob, 'status', '--json');
    assert.equal(other.code, 0, other.err);
    assert.equal(other.json.user, 'bob');
    assert.deepEqual(other.json.grants, []);
    assert.match((await jit(bob, 'status')).out, /bob: no temporary access on /);
    const stolen = await jit(bob, 'end', id);
    assert.equal(stolen.code, 1);
    assert.match(stolen.err, new RegExp(`you have no grant ${id}`));
    assert.equal((await jit(bob, 'end')).code, 1, 'bob has nothing to end');
    assert.deepEqual(await sudoers(), ['alice'], 'bob changed nothing');

    const ended = await jit(alice, 'end');
    const answered = Date.now();
    assert.equal(ended.code, 0, ended.err);
    assert.match(ended.out, /Ended: Administrators for alice\. Your sessions end now: you will be logged off/);
    await until(async () => !(await sudoers()).includes('alice'), 3_000, 'alice out of sudo');
    const outAfter = Date.now() - answered;
    assert.ok(outAfter <= 1000, `out of sudo ${outAfter} ms after jit end answered`);
    const done = await stack.api.waitGrant(id, (x) => x.state === 'revoked', 15_000);
    const events = done.timeline.map((e: { type: string; actor: string }) => [e.type, e.actor.startsWith('agent:') ? 'agent' : e.actor]);
    const from = events.findIndex(([t]: string[]) => t === 'grant.ended-by-user');
    assert.deepEqual(events.slice(from), [
      ['grant.ended-by-user', 'agent'],
      ['grant.revoking', `endpoint-user:${agent.hostname}\\alice`],
      ['agent.disabled', 'agent'],
      ['agent.logged-off', 'agent'],
      ['agent.removed', 'agent'],
      ['grant.revoked', 'agent'],
    ]);
    assert.equal((await jit(alice, 'status', '--json')).json.grants.length, 0, 'nothing left to show');
  });

  it('files a request from the machine for the caller\'s own account: a rule approves it and the elevation starts; refusals come back in the server\'s words', async () => {
    const dana = await person('dana');
    const eve = await person('eve');
    await createUser(stack.server!.ctx, { email: 'dana@corp.example', role: 'requester', password: 'correct horse battery staple 1' }, 'test');
    await until(async () => !!(await stack.server!.ctx.c.endpoints.findOne({ _id: agent.endpointId }))?.accounts?.some((a) => a.name === 'dana'), 15_000, 'the agent up (dana in its inventory)');
    const put = await stack.api.request('PUT', '/api/v1/request-rules', { rules: [{ name: 'short admin', os: ['linux'], groups: ['Administrators'], maxMinutes: 30, action: 'auto-approve' }] });
    assert.equal(put.status, 200, JSON.stringify(put.body));

    const short = await jit(dana, 'request', '--group', 'administrators', '--for', '1m', '--reason', 'install the printer driver', '--json');
    assert.equal(short.code, 0, short.err);
    const r = short.json.request;
    assert.equal(r.state, 'approved');
    assert.equal(r.rule.name, 'short admin');
    assert.equal(r.minutes, 1);
    const filed = await stack.server!.ctx.c.requests.findOne({ _id: r.id });
    assert.deepEqual([filed?.requesterEmail, filed?.account, filed?.endpointId, filed?.operation], ['dana@corp.example', 'dana', agent.endpointId, 'elevate-account']);
    const created = await stack.server!.ctx.c.audit.findOne({ _id: `request:${r.id}:created` } as never);
    assert.equal((created as { actor?: string } | null)?.actor, `endpoint-user:${agent.hostname}\\dana`, 'the request says where it came from');
    await stack.api.waitGrant(r.grant.id, (g) => g.state === 'enabled', 15_000);
    await until(async () => (await sudoers()).includes('dana'), 5_000, 'dana in sudo');
    const shown = await jit(dana, 'status', '--json');
    assert.deepEqual(shown.json.grants.map((g: { grantId: string }) => g.grantId), [r.grant.id]);

    // Longer than the rule allows: an approver decides; --wait follows it to the denial.
    const human = await jit(dana, 'request', '--group', 'Administrators', '--for', '2h', '--reason', 'a longer maintenance window');
    assert.equal(human.code, 0, human.err);
    assert.match(human.out, /^Waiting for an approver \(the rule "default"\): Administrators for 120 min\. It expires .* if nobody decides\.\n  request (\S+)\n$/);
    const pendingId = /request (\S+)/.exec(human.out)![1]!;
    const waiting = jit(dana, 'request', '--group', 'Users', '--for', '30m', '--reason', 'only to be denied, waiting', '--wait');
    await until(async () => (await stack.server!.ctx.c.requests.countDocuments({ requesterEmail: 'dana@corp.example', group: 'Users' })) === 1, 10_000, 'the Users request filed');
    const users = await stack.server!.ctx.c.requests.findOne({ requesterEmail: 'dana@corp.example', group: 'Users' });
    const deny = await stack.api.request('POST', `/api/v1/requests/${users!._id}/deny`, { note: 'use the service desk' });
    assert.equal(deny.status, 200, JSON.stringify(deny.body));
    const denied = await waiting;
    assert.equal(denied.code, 1);
    assert.match(denied.out, /^Denied: use the service desk\./);
    const st = await jit(dana, 'status');
    assert.equal(st.code, 0, st.err);
    const requests = st.out.slice(st.out.indexOf('Requests:\n'));
    assert.match(requests, /  Users for 30 min: denied: use the service desk\n    request /);
    assert.match(requests, new RegExp(`  Administrators for 120 min: pending \\(the rule "default"\\), expires .*\\n    request ${pendingId}`));
    assert.match(requests, new RegExp(`  Administrators for 1 min: approved\\n    request ${r.id}`));
    // The server down: status still answers from the agent, and says what it could not ask.
    await stack.stopServer();
    try {
      const offline = await jit(dana, 'status');
      assert.equal(offline.code, 0, offline.err);
      assert.match(offline.out, /^dana on .*:\n  Administrators for your account dana: /);
      assert.match(offline.out, /Requests: the server could not be asked just now\.\n$/);
    } finally {
      await stack.startServer();
    }

    // The policy's checks and the mapping, in the server's words; nothing filed.
    const before = await stack.server!.ctx.c.requests.countDocuments({});
    const noReason = await jit(dana, 'request', '--group', 'Administrators', '--for', '10m');
    assert.equal(noReason.code, 1);
    assert.match(noReason.err, /reason: say why, in at least 10 characters/);
    const nobody = await jit(eve, 'request', '--group', 'Administrators', '--for', '10m', '--reason', 'eve is nobody here');
    assert.equal(nobody.code, 1);
    assert.match(nobody.err, /eve is nobody's own account on Linux/);
    const bad = await jit(dana, 'request', '--group', 'Wheel', '--for', '10m');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--group must be one of Administrators, Power Users, Users/);
    assert.equal((await jit(dana, 'request', '--group', 'Users', '--for', 'soon')).code, 2);
    assert.equal(await stack.server!.ctx.c.requests.countDocuments({}), before);
  });

  it('shows a temporary account its grant; says so when the agent is not running (exit 3)', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 0, 60));
    const id = res.body.grants[0].id;
    const g = await stack.api.waitGrant(id, (x) => x.state === 'enabled', 15_000);
    const temp = await uidOf(agent.root, g.username);
    const session = await runAs(temp);
    try {
      const status = await jit(temp, 'status', '--json');
      assert.equal(status.code, 0, status.err);
      assert.equal(status.json.user, g.username);
      assert.deepEqual(status.json.grants.map((x: { grantId: string; operation: string }) => [x.grantId, x.operation]), [[id, 'temporary-access']]);
      assert.match((await jit(temp, 'status')).out, new RegExp(`Administrators for the temporary account ${g.username}: active`));
    } finally {
      session.kill();
    }
    await agent.kill();
    const down = await jit(temp, 'status');
    assert.equal(down.code, 3);
    assert.match(down.err, /the jit-access agent is not running on this machine/);
    const usage = await jit(temp, 'frobnicate');
    assert.equal(usage.code, 2);
    assert.match(usage.err, /unknown command "frobnicate"/);
  });
});
