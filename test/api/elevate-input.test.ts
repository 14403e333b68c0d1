import assert from 'node:assert/strict';
import { grantBody, startStack, type Stack } from '../support/stack.ts';

/**
 * elevate-account through the API: what is accepted and stored, and every refusal (400 naming
 * the field, nothing stored). Endpoints enrolled directly, their inventory sent as an agent would.
 */
describe('grants API: elevate-account', function () {
  this.timeout(120_000);
  let stack: Stack;
  let linux: string;
  let windows: string;
  let oldAgent: string;

  before(async () => {
    stack = await startStack({
      maxDurationMinutes: 60,
      elevation: { excludedAccounts: ['breakglass'], rogueAdmins: 'report', allowedAdmins: ['backup-admin'], endWarningsSeconds: [60, 600] },
    });
    linux = await enroll('lin-box', 'linux', {
      accounts: [
        { name: 'alice', id: '1000', system: false, admin: false, managed: false },
        { name: 'daemon', id: '1', system: true, admin: false, managed: false },
        { name: 'svc-web', id: '1001', system: true, admin: false, managed: false },
        { name: 'k3xq9a7b2mzp', id: '2001000001', system: false, admin: true, managed: true },
      ],
      capabilities: ['elevate-account', 'passwordless-sudo'],
    });
    windows = await enroll('win-box', 'windows', { accounts: [], capabilities: ['elevate-account'] });
    oldAgent = await enroll('old-box', 'linux', null);
  });
  after(() => stack?.stop());

  async function enroll(hostname: string, os: string, inventory: unknown): Promise<string> {
    const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
    const res = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os, agentVersion: 't' });
    assert.equal(res.status, 201);
    if (inventory) {
      const put = await stack.api.request('PUT', '/agent/v1/inventory', inventory, { authorization: `Bearer ${res.body.credential}` });
      assert.equal(put.status, 204, JSON.stringify(put.body));
    }
    return res.body.endpointId;
  }

  const elevate = (endpoint: string, account: string | undefined, extra: Record<string, unknown> = {}, startIn = 60, seconds = 600) =>
    grantBody(endpoint, startIn, seconds, { operation: 'elevate-account', ...(account === undefined ? {} : { account }), ...extra });

  async function counts() {
    const { c } = stack.server!.ctx;
    return { grants: await c.grants.countDocuments(), instructions: await c.instructions.countDocuments(), jobs: await stack.server!.db.collection('agendaJobs').countDocuments() };
  }

  async function rejects(body: unknown, field: string, match: RegExp) {
    const before = await counts();
    const res = await stack.api.request('POST', '/api/v1/grants', body);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    const hit = (res.body.error.fields ?? []).find((f: { field: string }) => f.field === field);
    assert.ok(hit, `no error for ${field}: ${JSON.stringify(res.body)}`);
    assert.match(hit.message, match);
    assert.deepEqual(await counts(), before, 'nothing may be stored');
  }

  it('creates an elevate-account grant whose plan carries the account, the end action, sudo and the guard policy', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', elevate(linux, 'alice', { passwordlessSudo: true, endAction: 'notify' }, 60, 300));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const g = res.body.grants[0];
    assert.equal(g.operation, 'elevate-account');
    assert.equal(g.account, 'alice');
    assert.equal(g.endAction, 'notify');
    assert.equal(g.passwordlessSudo, true);
    assert.equal(g.emailDelivery, null);
    const ins = await stack.server!.ctx.c.instructions.findOne({ grantId: g.id });
    assert.equal(ins?.plan.operation, 'elevate-account');
    assert.equal(ins?.plan.account, 'alice');
    assert.deepEqual(ins?.plan.guard, { action: 'report', allowed: ['backup-admin'] });
    assert.deepEqual(ins?.plan.endWarnings, [600, 60], 'the warning times travel with the plan, largest first');
    const end = Date.parse(g.endAt);
    assert.deepEqual(g.endWarnings, [new Date(end - 600_000).toISOString(), new Date(end - 60_000).toISOString()]);
    const resend = await stack.api.request('POST', `/api/v1/grants/${g.id}/resend`);
    assert.equal(resend.status, 409);
    assert.equal(resend.body.error.id, 'grant.no_credentials');
  });

  it('refuses a grant that overlaps a live one for the same account and group on that endpoint', () =>
    rejects(elevate(linux, 'Alice', {}, 120, 300), 'account', /already elevated to Administrators on lin-box/));
  it('accepts the same account after that window', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', elevate(linux, 'alice', {}, 400, 300));
    assert.equal(res.status, 201, JSON.stringify(res.body));
  });
  it('refuses elevate-account without an account', () => rejects(elevate(linux, undefined), 'account', /name the existing account/));
  it('refuses an account with temporary-access', () => rejects(grantBody(linux, 60, 600, { account: 'alice' }), 'account', /only for elevate-account/));
  it('refuses an account on the exclusion list', () => rejects(elevate(linux, 'BreakGlass'), 'account', /excluded from elevation by policy/));
  it('refuses root', () => rejects(elevate(linux, 'root'), 'account', /system account/));
  it('refuses an account the endpoint reports as a system account', () => rejects(elevate(linux, 'svc-web'), 'account', /svc-web is a system account on lin-box/));
  it('refuses one of our temporary accounts', () => rejects(elevate(linux, 'k3xq9a7b2mzp'), 'account', /temporary account of this service/));
  it('refuses a name Linux would not have', () => rejects(elevate(linux, 'bad name;rm'), 'account', /not an account name Linux has/));
  it('refuses the built-in Windows Administrator, by name and by SID', async () => {
    await rejects(elevate(windows, 'Administrator'), 'account', /system account/);
    await rejects(elevate(windows, 'S-1-5-21-1004336348-1177238915-682003330-500'), 'account', /system account/);
    await rejects(elevate(windows, 'WIN-BOX\\Guest'), 'account', /system account/);
  });
  it('accepts DOMAIN\\user and a SID on Windows', async () => {
    for (const account of ['CORP\\bob', 'S-1-5-21-1004336348-1177238915-682003330-1104']) {
      const res = await stack.api.request('POST', '/api/v1/grants', elevate(windows, account));
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
  });
  it('refuses passwordless sudo on an endpoint that cannot do it, and with another group', async () => {
    await rejects(elevate(windows, 'carol', { passwordlessSudo: true }), 'passwordlessSudo', /cannot give sudo without a password/);
    await rejects(elevate(linux, 'carol', { passwordlessSudo: true, group: 'Users' }), 'passwordlessSudo', /only with the Administrators group/);
    // A temporary account asks for it the same way, and is refused the same way.
    await rejects(grantBody(windows, 60, 600, { group: 'Administrators', passwordlessSudo: true }), 'passwordlessSudo', /cannot give sudo without a password/);
  });
  it('refuses an endpoint whose agent cannot elevate (no inventory: an older agent)', () =>
    rejects(elevate(oldAgent, 'alice'), 'endpoints.0', /cannot elevate existing accounts \(update the agent;/));
  it('refuses an unknown end action', () => rejects(elevate(linux, 'alice', { endAction: 'reboot' }), 'endAction', /logoff, notify/));
  it('keeps the baseline the agent reported and sends it with the plan to a re-enrolled agent of the same machine', async () => {
    const machineId = 'a'.repeat(64);
    const enrollOnce = async () => {
      const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
      const res = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'handover-box', os: 'linux', agentVersion: 't', machineId });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return { id: res.body.endpointId as string, auth: { authorization: `Bearer ${res.body.credential}` } };
    };
    const first = await enrollOnce();
    const inv = { accounts: [{ name: 'hana', id: '1000', system: false, admin: false, managed: false }], capabilities: ['elevate-account'] };
    assert.equal((await stack.api.request('PUT', '/agent/v1/inventory', inv, first.auth)).status, 204);
    const created = await stack.api.request('POST', '/api/v1/grants', elevate(first.id, 'hana', {}, 0, 600));
    const id = created.body.grants[0].id;
    const at = new Date().toISOString();
    const reports = [
      { id: `r1-${id}`, grantId: id, type: 'created', at, username: 'hana' },
      { id: `r2-${id}`, grantId: id, type: 'enabled', at, username: 'hana', detail: 'was a member before: no; passwordless sudo: no' },
    ];
    assert.equal((await stack.api.request('POST', '/agent/v1/acks', { ids: [`provision:${id}`] }, first.auth)).status, 204);
    assert.equal((await stack.api.request('POST', '/agent/v1/reports', { reports }, first.auth)).status, 200);
    assert.equal((await stack.api.grant(id)).wasMember, false);
    const again = await enrollOnce();
    assert.equal(again.id, first.id, 'the same machine keeps its endpoint');
    const plans = (await stack.server!.ctx.c.instructions.find({ grantId: id }).toArray()).map((i) => i.plan.wasMember);
    assert.deepEqual(plans.slice(-1), [false], 'the handover plan carries the baseline');
  });

  it('refuses an inventory that is not one (400, the endpoint keeps the last good one)', async () => {
    const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
    const enrolled = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'inv-box', os: 'linux', agentVersion: 't' });
    const auth = { authorization: `Bearer ${enrolled.body.credential}` };
    const good = { accounts: [{ name: 'zed', id: '1000', system: false, admin: false, managed: false }], capabilities: ['elevate-account'] };
    assert.equal((await stack.api.request('PUT', '/agent/v1/inventory', good, auth)).status, 204);
    const bad = await stack.api.request('PUT', '/agent/v1/inventory', { accounts: [{ name: 'x' }], capabilities: [] }, auth);
    assert.equal(bad.status, 400);
    const e = await stack.server!.ctx.c.endpoints.findOne({ _id: enrolled.body.endpointId });
    assert.deepEqual(e?.accounts?.map((a) => a.name), ['zed']);
  });
});
