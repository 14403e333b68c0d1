import assert from 'node:assert/strict';
import { createApiToken, createUser } from '../../server/web/users.ts';
import type { Role } from '../../server/store/collections.ts';
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.ts';
import { startStack, type Stack } from '../support/stack.ts';

/**
 * Access requests through the API on a real server and FerretDB: filing, the rules, approval
 * (which makes the grant through the wizard's command), denial, cancel, expiry, who may see and
 * decide what, every refusal (4xx naming the reason, nothing stored) and two approvers at once.
 */
describe('requests API', function () {
  this.timeout(120_000);
  let stack: Stack;
  let smtp: TestSmtpServer;
  const tokens: Record<string, string> = {};

  before(async () => {
    stack = await startStack({ publicUrl: 'https://jit.corp.example', requests: { expireAfterMinutes: 60, reasonRequired: true, reasonMinLength: 10, maxMinutes: 240, groups: ['Administrators', 'Users'] } });
    smtp = await startSmtpServer({ users: { jit: 'smtp-secret-1' } });
    const smtpPolicy = { host: '127.0.0.1', port: smtp.port, security: 'starttls', username: 'jit', password: 'smtp-secret-1', from: 'jit@corp.example', organisation: 'Corp', timeZone: 'UTC', tlsCa: smtp.ca };
    assert.equal((await stack.api.request('PUT', '/api/v1/server-smtp', smtpPolicy)).status, 200);
    for (const hostname of ['dev-box-1', 'prod-db-1']) {
      const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
      const enrolled = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os: 'linux', agentVersion: 't' });
      // What the agent reports at start: it can elevate, and its people's accounts.
      const accounts = ['alice', 'bob', 'ann'].map((name, i) => ({ name, id: String(1000 + i), system: false, admin: false, managed: false }));
      const put = await stack.api.request('PUT', '/agent/v1/inventory', { accounts, capabilities: ['elevate-account'] }, { authorization: `Bearer ${enrolled.body.credential}` });
      assert.equal(put.status, 204, JSON.stringify(put.body));
    }
    const people: [string, Role][] = [['alice@corp.example', 'requester'], ['bob@corp.example', 'requester'], ['ann@corp.example', 'approver'], ['aaron@corp.example', 'approver'], ['audrey@corp.example', 'auditor']];
    for (const [email, role] of people) {
      const user = await createUser(stack.server!.ctx, { email, role, password: 'correct horse battery staple 1' }, 'test');
      tokens[email] = await createApiToken(stack.server!.ctx, user);
    }
  });
  after(async () => {
    await stack?.stop();
    await smtp?.stop();
  });
  beforeEach(async () => {
    const { c } = stack.server!.ctx;
    // Each test starts without requests, rules or live elevations (an approval's grant would overlap the next).
    await c.requests.deleteMany({});
    await c.requestRules.deleteMany({});
    await c.grants.deleteMany({});
    await c.audit.deleteMany({ type: 'request-rules.changed' });
  });

  const as = (email: string) => (method: string, p: string, body?: unknown) => stack.api.request(method, p, body, { authorization: `Bearer ${tokens[email]}` });
  const alice = as('alice@corp.example');
  const bob = as('bob@corp.example');
  const ann = as('ann@corp.example');
  const aaron = as('aaron@corp.example');
  const ask = (extra: Record<string, unknown> = {}) => ({ endpoint: 'dev-box-1', group: 'Administrators', minutes: 120, reason: 'install the printer driver', ...extra });
  const stored = async () => ({ requests: await stack.server!.ctx.c.requests.countDocuments(), grants: await stack.server!.ctx.c.grants.countDocuments() });

  it('files a request for the requester\'s own account, waiting for an approver (the default rule), audited', async () => {
    const res = await alice('POST', '/api/v1/requests', ask());
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.state, 'pending');
    assert.equal(res.body.account, 'alice');
    assert.equal(res.body.operation, 'elevate-account');
    assert.deepEqual(res.body.rule, { name: 'default', action: 'require-approval', approvers: [] });
    const events = await stack.server!.ctx.c.audit.find({ requestId: res.body.id }).toArray();
    assert.deepEqual(events.map((e) => e.type), ['request.created']);
    assert.equal(events[0]!.actor, 'user:alice@corp.example');
  });

  it('emails the approvers (never the requester) when a request waits, and the requester when it is decided or expires', async () => {
    const to = (m: { to?: unknown }) => JSON.stringify(m.to);
    const filed = (await alice('POST', '/api/v1/requests', ask({ reason: 'install the <b>printer</b> driver' }))).body;
    const about = (m: { text?: string }) => (m.text ?? '').includes(filed.id);
    for (const approver of ['ann@corp.example', 'aaron@corp.example']) {
      const m = await smtp.waitFor((x) => about(x) && to(x).includes(approver) && /^Access request:/.test(x.subject ?? ''), 10_000);
      assert.equal(m.subject, 'Access request: alice@corp.example asks for Administrators on dev-box-1');
      assert.match(m.text!, /Reason: install the <b>printer<\/b> driver/);
      assert.match(String(m.html), /install the &lt;b&gt;printer&lt;\/b&gt; driver/, 'the reason is escaped in HTML');
      assert.ok(m.text!.includes(`https://jit.corp.example/requests/${filed.id}`), 'a link to the request');
    }
    await ann('POST', `/api/v1/requests/${filed.id}/approve`, { minutes: 15, note: 'fifteen minutes' });
    const decided = await smtp.waitFor((x) => about(x) && to(x).includes('alice@corp.example'), 10_000);
    assert.equal(decided.subject, 'Your request for Administrators on dev-box-1: approved');
    assert.match(decided.text!, /approved by ann@corp.example/);
    assert.match(decided.text!, /Note: fifteen minutes/);
    assert.equal(smtp.messages.filter((x) => about(x) && to(x).includes('alice@corp.example') && /^Access request/.test(x.subject ?? '')).length, 0, 'the requester is no approver of their own');
    const late = (await alice('POST', '/api/v1/requests', ask({ group: 'Users' }))).body;
    await stack.server!.ctx.c.requests.updateOne({ _id: late.id }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    await alice('GET', `/api/v1/requests/${late.id}`);
    const expired = await smtp.waitFor((x) => (x.text ?? '').includes(late.id) && to(x).includes('alice@corp.example'), 10_000);
    assert.equal(expired.subject, 'Your request for Users on dev-box-1: expired');
  });

  it('refuses bad input with the field and why, storing nothing', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [ask({ endpoint: 'nowhere' }), 'endpoint', /unknown endpoint/],
      [ask({ minutes: 241 }), 'minutes', /at most 240 minutes/],
      [ask({ minutes: 0 }), 'minutes', /more than zero/],
      [ask({ reason: 'because' }), 'reason', /at least 10 characters/],
      [ask({ reason: 'x'.repeat(501) }), 'reason', /at most 500/],
      [ask({ startAt: new Date(Date.now() - 3_600_000).toISOString() }), 'startAt', /past/],
      [ask({ group: 'Power Users' }), 'group', /Administrators, Users only/],
      [ask({ account: 'root' }), 'account', /your own account \(alice\) only/],
      [ask({ minutes: undefined }), 'minutes', /for how long/],
    ];
    const before = await stored();
    for (const [body, field, why] of cases) {
      const res = await alice('POST', '/api/v1/requests', body);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      const hit = res.body.error.fields?.find((f: { field: string }) => f.field === field);
      assert.ok(hit, `${field}: ${JSON.stringify(res.body)}`);
      assert.match(hit.message, why);
    }
    assert.deepEqual(await stored(), before);
    // The admin token is nobody: it cannot file for itself.
    assert.equal((await stack.api.request('POST', '/api/v1/requests', ask())).status, 403);
  });

  it('several endpoints at once: one request each, routed on its own; a bad one files none', async () => {
    const before = await stored();
    const bad = await alice('POST', '/api/v1/requests', { ...ask(), endpoint: undefined, endpoints: ['dev-box-1', 'nowhere', 'dev-box-1'] });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.error.fields.map((f: { field: string }) => f.field).sort(), ['endpoints.1', 'endpoints.2']);
    assert.deepEqual(await stored(), before, 'nothing filed');
    assert.equal((await alice('POST', '/api/v1/requests', { ...ask(), endpoints: ['dev-box-1'] })).status, 400, 'endpoint or endpoints, not both');
    await stack.api.request('PUT', '/api/v1/request-rules', { rules: [{ name: 'no prod', hostnames: ['prod-*'], action: 'deny' }] });
    const res = await alice('POST', '/api/v1/requests', { ...ask(), endpoint: undefined, endpoints: ['dev-box-1', 'prod-db-1'] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.requests.map((r: { hostname: string; state: string }) => [r.hostname, r.state]), [['dev-box-1', 'pending'], ['prod-db-1', 'denied']]);
  });

  it('one open request per requester, endpoint and group (409); another group is fine', async () => {
    assert.equal((await alice('POST', '/api/v1/requests', ask())).status, 201);
    const again = await alice('POST', '/api/v1/requests', ask());
    assert.equal(again.status, 409);
    assert.equal(again.body.error.id, 'request.duplicate');
    assert.equal((await alice('POST', '/api/v1/requests', ask({ group: 'Users' }))).status, 201);
  });

  it('an approver approves with a shorter duration: the grant is made, linked both ways, audited; the requester sees it', async () => {
    const filed = (await alice('POST', '/api/v1/requests', ask())).body;
    assert.equal((await alice('POST', `/api/v1/requests/${filed.id}/approve`, {})).status, 403, 'a requester decides nothing');
    const longer = await ann('POST', `/api/v1/requests/${filed.id}/approve`, { minutes: 180 });
    assert.equal(longer.status, 400);
    assert.match(longer.body.error.fields[0].message, /shorten the access, not lengthen it/);
    const res = await ann('POST', `/api/v1/requests/${filed.id}/approve`, { minutes: 30, note: 'half an hour is enough' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.state, 'approved');
    assert.equal(res.body.decidedBy, 'user:ann@corp.example');
    const g = await stack.api.grant(res.body.grant.id);
    assert.equal(g.operation, 'elevate-account');
    assert.equal(g.account, 'alice');
    assert.equal(g.email, 'alice@corp.example');
    assert.equal((Date.parse(g.endAt) - Date.parse(g.startAt)) / 60_000, 30);
    assert.equal(g.accessRequestId, filed.id, 'the grant links back to its request');
    const seen = (await alice('GET', `/api/v1/requests/${filed.id}`)).body;
    assert.equal(seen.grant.state, 'requested', 'the grant\'s live state');
    assert.equal(seen.note, 'half an hour is enough');
    const again = await aaron('POST', `/api/v1/requests/${filed.id}/deny`, { note: 'no' });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.id, 'request.not_pending');
  });

  it('denies with a note the requester sees; nobody decides their own request', async () => {
    const mine = (await ann('POST', '/api/v1/requests', ask())).body;
    const self = await ann('POST', `/api/v1/requests/${mine.id}/approve`, {});
    assert.equal(self.status, 403);
    assert.equal(self.body.error.id, 'request.self_approval');
    const filed = (await alice('POST', '/api/v1/requests', ask())).body;
    assert.equal((await aaron('POST', `/api/v1/requests/${filed.id}/deny`, {})).status, 400, 'a denial says why');
    const res = await aaron('POST', `/api/v1/requests/${filed.id}/deny`, { note: 'use the print server instead' });
    assert.equal(res.body.state, 'denied');
    assert.equal((await alice('GET', `/api/v1/requests/${filed.id}`)).body.note, 'use the print server instead');
    assert.equal((await stack.server!.ctx.c.grants.countDocuments({ accessRequestId: filed.id })), 0);
  });

  it('two approvers at the same moment: exactly one decision, at most one grant', async () => {
    for (let round = 0; round < 5; round++) {
      await stack.server!.ctx.c.requests.deleteMany({});
      await stack.server!.ctx.c.grants.deleteMany({});
      const filed = (await alice('POST', '/api/v1/requests', ask())).body;
      const [a, b] = await Promise.all([ann('POST', `/api/v1/requests/${filed.id}/approve`, {}), aaron('POST', `/api/v1/requests/${filed.id}/approve`, { minutes: 10 })]);
      assert.deepEqual([a.status, b.status].sort(), [200, 409], JSON.stringify([a.body, b.body]));
      assert.equal(await stack.server!.ctx.c.grants.countDocuments({ accessRequestId: filed.id }), 1);
      const approvals = await stack.server!.ctx.c.audit.countDocuments({ requestId: filed.id, type: 'request.approved' });
      assert.equal(approvals, 1);
    }
  });

  it('a requester sees and cancels only their own; a pending request expires when its time is up', async () => {
    const filed = (await alice('POST', '/api/v1/requests', ask())).body;
    assert.equal((await bob('GET', `/api/v1/requests/${filed.id}`)).status, 404, 'another\'s request does not exist for them');
    assert.deepEqual((await bob('GET', '/api/v1/requests')).body.requests, []);
    assert.equal((await as('audrey@corp.example')('GET', '/api/v1/requests')).body.requests.length, 1, 'an auditor reads them all');
    assert.equal((await bob('GET', '/api/v1/grants')).status, 403, 'a requester reads no grants');
    assert.equal((await bob('POST', `/api/v1/requests/${filed.id}/cancel`)).status, 404);
    const cancelled = await alice('POST', `/api/v1/requests/${filed.id}/cancel`);
    assert.equal(cancelled.body.state, 'cancelled');
    const late = (await alice('POST', '/api/v1/requests', ask())).body;
    await stack.server!.ctx.c.requests.updateOne({ _id: late.id }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    const seen = (await alice('GET', `/api/v1/requests/${late.id}`)).body;
    assert.equal(seen.state, 'expired');
    assert.equal((await ann('POST', `/api/v1/requests/${late.id}/approve`, {})).status, 409);
    assert.equal(await stack.server!.ctx.c.audit.countDocuments({ requestId: late.id, type: 'request.expired', actor: 'system' }), 1);
  });

  it('rules: first match wins; auto-approve makes the grant with no approver, deny refuses, named approvers only; versions audited', async () => {
    const put = await stack.api.request('PUT', '/api/v1/request-rules', {
      rules: [
        { name: 'no prod', hostnames: ['prod-*'], action: 'deny' },
        { name: 'short user access', groups: ['Users'], maxMinutes: 60, action: 'auto-approve' },
        { name: 'admins need aaron', groups: ['Administrators'], action: 'require-approval', approvers: ['aaron@corp.example'] },
      ],
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.version, 1);
    assert.equal((await ann('PUT', '/api/v1/request-rules', { rules: [] })).status, 403, 'only admins edit the rules');
    const bad = await stack.api.request('PUT', '/api/v1/request-rules', { rules: [{ name: 'x', action: 'maybe' }] });
    assert.equal(bad.status, 400);
    assert.equal((await stack.api.request('GET', '/api/v1/request-rules')).body.version, 1, 'a refused list changes nothing');
    const denied = (await alice('POST', '/api/v1/requests', ask({ endpoint: 'prod-db-1', group: 'Users', minutes: 30 }))).body;
    assert.equal(denied.state, 'denied', 'the first rule that matches decides');
    assert.equal(denied.note, 'denied by the rule "no prod"');
    const auto = (await alice('POST', '/api/v1/requests', ask({ group: 'Users', minutes: 30 }))).body;
    assert.equal(auto.state, 'approved');
    assert.equal(auto.rule.name, 'short user access');
    assert.equal(auto.decidedBy, 'rule:short user access');
    assert.ok(auto.grant?.id);
    const routed = (await alice('POST', '/api/v1/requests', ask())).body;
    assert.equal(routed.rule.name, 'admins need aaron');
    assert.equal((await ann('POST', `/api/v1/requests/${routed.id}/approve`, {})).body.error.id, 'request.not_approver');
    assert.equal((await aaron('POST', `/api/v1/requests/${routed.id}/approve`, {})).status, 200);
    const versions = await stack.server!.ctx.c.audit.find({ type: 'request-rules.changed' }).toArray();
    assert.deepEqual(versions.map((v) => v.detail.version), [1]);
  });
});
