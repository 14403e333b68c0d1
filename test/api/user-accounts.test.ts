import assert from 'node:assert/strict';
import type { Role } from '../../server/store/collections.ts';
import { createApiToken, createUser } from '../../server/web/users.ts';
import { startStack, type Stack } from '../support/stack.ts';

/**
 * A person's own account per OS (`PUT /api/v1/users/:id/accounts`): admins only, checked per OS
 * and field with nothing stored on a refusal, audited; a request for elevate-account names the
 * mapped account (on the endpoint's OS), its approval's grant elevates it, and asking for another
 * account is still refused. A temporary-access request names none.
 */
describe('per-user account mapping (API)', function () {
  this.timeout(120_000);
  let stack: Stack;
  const tokens: Record<string, string> = {};
  const ids: Record<string, string> = {};

  before(async () => {
    stack = await startStack({ requests: { expireAfterMinutes: 60, reasonRequired: true, reasonMinLength: 10, maxMinutes: 240, groups: ['Administrators', 'Users'] } });
    for (const [hostname, os] of [['lin-1', 'linux'], ['mac-1', 'macos'], ['win-1', 'windows']] as const) {
      const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
      const enrolled = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os, agentVersion: 't' });
      const accounts = ['alice', 'asmith', 'bob'].map((name, i) => ({ name, id: String(1000 + i), system: false, admin: false, managed: false }));
      const put = await stack.api.request('PUT', '/agent/v1/inventory', { accounts, capabilities: ['elevate-account'] }, { authorization: `Bearer ${enrolled.body.credential}` });
      assert.equal(put.status, 204, JSON.stringify(put.body));
    }
    const people: [string, Role][] = [['alice@corp.example', 'requester'], ['bob@corp.example', 'requester'], ['ann@corp.example', 'approver'], ['audrey@corp.example', 'auditor'], ['root@corp.example', 'admin']];
    for (const [email, role] of people) {
      const user = await createUser(stack.server!.ctx, { email, role, password: 'correct horse battery staple 1' }, 'test');
      ids[email] = user._id;
      tokens[email] = await createApiToken(stack.server!.ctx, user);
    }
  });
  after(() => stack?.stop());
  beforeEach(async () => {
    const { c } = stack.server!.ctx;
    await c.requests.deleteMany({});
    await c.grants.deleteMany({});
    await c.users.updateMany({}, { $unset: { accounts: '' } });
  });

  const as = (email: string) => (method: string, p: string, body?: unknown) => stack.api.request(method, p, body, { authorization: `Bearer ${tokens[email]}` });
  const alice = as('alice@corp.example');
  const ann = as('ann@corp.example');
  const root = as('root@corp.example');
  const ask = (endpoint: string, extra: Record<string, unknown> = {}) => ({ endpoint, group: 'Administrators', minutes: 60, reason: 'install the printer driver', ...extra });
  const aliceId = () => ids['alice@corp.example']!;
  const storedAccounts = async () => (await stack.server!.ctx.c.users.findOne({ _id: aliceId() }))?.accounts;

  it('by default the email\'s local part on every OS', async () => {
    const list = await root('GET', '/api/v1/users');
    assert.equal(list.status, 200, JSON.stringify(list.body));
    const a = list.body.users.find((u: { email: string }) => u.email === 'alice@corp.example');
    assert.deepEqual(a.accounts, {});
    assert.deepEqual(a.ownAccounts, { linux: 'alice', macos: 'alice', windows: 'alice' });
    assert.equal(a.passwordHash, undefined);
    for (const host of ['lin-1', 'win-1']) assert.equal((await alice('POST', '/api/v1/requests', ask(host))).body.account, 'alice', host);
  });

  it('an admin sets it per OS (Windows as DOMAIN\\user), audited; requests and their grants use it, another account is still 400', async () => {
    const put = await root('PUT', `/api/v1/users/${aliceId()}/accounts`, { linux: ' asmith ', windows: 'CORP\\alice' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.accounts, { linux: 'asmith', windows: 'CORP\\alice' });
    assert.deepEqual(put.body.ownAccounts, { linux: 'asmith', macos: 'alice', windows: 'CORP\\alice' });
    assert.deepEqual(await storedAccounts(), { linux: 'asmith', windows: 'CORP\\alice' });
    const events = await stack.server!.ctx.c.audit.find({ type: 'user.accounts-changed' }).toArray();
    assert.equal(events.length, 1);
    assert.equal(events[0]!.actor, 'user:root@corp.example');
    assert.deepEqual(events[0]!.detail, { email: 'alice@corp.example', accounts: { linux: 'asmith', windows: 'CORP\\alice' }, previous: {} });

    const lin = await alice('POST', '/api/v1/requests', ask('lin-1'));
    assert.equal(lin.status, 201, JSON.stringify(lin.body));
    assert.equal(lin.body.account, 'asmith');
    assert.equal((await alice('POST', '/api/v1/requests', ask('mac-1'))).body.account, 'alice', 'macOS: not mapped, the default');
    const win = await alice('POST', '/api/v1/requests', ask('win-1', { account: 'corp\\ALICE' }));
    assert.equal(win.status, 201, 'naming one\'s own account (any letter case) is fine');
    assert.equal(win.body.account, 'CORP\\alice');
    const other = await alice('POST', '/api/v1/requests', ask('lin-1', { group: 'Users', account: 'alice' }));
    assert.equal(other.status, 400);
    assert.match(other.body.error.fields.find((f: { field: string }) => f.field === 'account').message, /your own account \(asmith\) only/);

    // The approval's grant elevates the mapped account (the wizard's checks pass for DOMAIN\user too).
    for (const [r, account] of [[lin.body, 'asmith'], [win.body, 'CORP\\alice']] as const) {
      const approved = await ann('POST', `/api/v1/requests/${r.id}/approve`, {});
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      const g = await stack.api.grant(approved.body.grant.id);
      assert.equal(g.operation, 'elevate-account');
      assert.equal(g.account, account);
    }
  });

  it('refuses a name the OS has not got, a system or excluded account, another person\'s own account: per field, nothing stored', async () => {
    await root('PUT', `/api/v1/users/${aliceId()}/accounts`, { linux: 'asmith' });
    stack.server!.ctx.config.elevation.excludedAccounts = ['breakglass'];
    const auditBefore = await stack.server!.ctx.c.audit.countDocuments({ type: 'user.accounts-changed' });
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ linux: 'CORP\\alice' }, 'linux', /not an account name Linux has/],
      [{ macos: '-rf' }, 'macos', /not an account name macOS has/],
      [{ windows: 'a/b' }, 'windows', /not an account name Windows has/],
      [{ linux: 'x'.repeat(300) }, 'linux', /at most 256/],
      [{ linux: 42 }, 'linux', /an account name, or null/],
      [{ linux: 'root' }, 'linux', /system account/],
      [{ macos: '_spotlight' }, 'macos', /system account/],
      [{ windows: 'CORP\\Administrator' }, 'windows', /system account/],
      [{ windows: 'CORP\\BreakGlass' }, 'windows', /excluded from elevation by policy/],
      [{ linux: 'bob' }, 'linux', /bob@corp\.example's own account on Linux/],
      [{ windows: 'BOB' }, 'windows', /bob@corp\.example's own account on Windows/],
      [{ solaris: 'alice' }, 'solaris', /unknown field/],
    ];
    for (const [body, field, why] of cases) {
      const res = await root('PUT', `/api/v1/users/${aliceId()}/accounts`, { linux: 'asmith2', ...body });
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      const hit = res.body.error.fields?.find((f: { field: string }) => f.field === field);
      assert.ok(hit, `${field}: ${JSON.stringify(res.body)}`);
      assert.match(hit.message, why);
    }
    const all = await root('PUT', `/api/v1/users/${aliceId()}/accounts`, { linux: 'root', macos: 'bob', windows: 'a/b' });
    assert.deepEqual(all.body.error.fields.map((f: { field: string }) => f.field).sort(), ['linux', 'macos', 'windows'], 'every field at once');
    stack.server!.ctx.config.elevation.excludedAccounts = [];
    assert.deepEqual(await storedAccounts(), { linux: 'asmith' }, 'nothing stored');
    assert.equal(await stack.server!.ctx.c.audit.countDocuments({ type: 'user.accounts-changed' }), auditBefore, 'nothing audited');
    const unknown = await root('PUT', '/api/v1/users/nobody-there/accounts', { linux: 'x' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.id, 'user.not_found');
    assert.equal((await stack.api.request('PUT', `/api/v1/users/${aliceId()}/accounts`, 'linux=asmith', { 'content-type': 'text/plain' })).status, 400, 'not JSON');
  });

  it('a later user whose email shares a local part with someone\'s own account cannot elevate it (409, nothing filed) until an admin maps theirs', async () => {
    const partner = await createUser(stack.server!.ctx, { email: 'Alice@partner.example', role: 'requester', password: 'correct horse battery staple 1' }, 'test');
    const other = as('alice@partner.example');
    tokens['alice@partner.example'] = await createApiToken(stack.server!.ctx, partner);
    try {
      for (const who of [alice, other]) {
        const res = await who('POST', '/api/v1/requests', ask('lin-1'));
        assert.equal(res.status, 409, JSON.stringify(res.body));
        assert.equal(res.body.error.id, 'request.account_shared');
        assert.match(res.body.error.message, /\(alice\) is also another person's own account/);
        assert.doesNotMatch(res.body.error.message, /@/, 'the other person is not named to a requester');
      }
      assert.equal(await stack.server!.ctx.c.requests.countDocuments({}), 0);
      // A mapping elsewhere frees the name: alice@corp keeps `alice` on Linux; Windows names compare in any case.
      assert.equal((await root('PUT', `/api/v1/users/${partner._id}/accounts`, { linux: 'apartner', windows: 'PARTNER\\alice' })).status, 200);
      assert.equal((await alice('POST', '/api/v1/requests', ask('lin-1'))).status, 201);
      assert.equal((await other('POST', '/api/v1/requests', ask('lin-1'))).body.account, 'apartner');
      assert.equal((await other('POST', '/api/v1/requests', ask('mac-1'))).body.error.id, 'request.account_shared', 'macOS: both still `alice`');
      // Mapping someone onto a name that is another person's by default is refused (per field).
      const taken = await root('PUT', `/api/v1/users/${partner._id}/accounts`, { windows: 'ALICE' });
      assert.match(taken.body.error.fields[0].message, /ALICE is alice@corp\.example's own account on Windows/);
    } finally {
      await stack.server!.ctx.c.users.deleteOne({ _id: partner._id });
    }
  });

  it('by email too; null, empty or left out means the default; {} clears the whole mapping', async () => {
    const put = await root('PUT', '/api/v1/users/Alice@Corp.example/accounts', { linux: 'asmith', macos: 'asmith', windows: 'CORP\\alice' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const some = await root('PUT', `/api/v1/users/${aliceId()}/accounts`, { linux: null, macos: '', windows: 'CORP\\alice' });
    assert.deepEqual(some.body.accounts, { windows: 'CORP\\alice' });
    assert.deepEqual(await storedAccounts(), { windows: 'CORP\\alice' });
    const none = await root('PUT', `/api/v1/users/${aliceId()}/accounts`, {});
    assert.equal(none.status, 200);
    assert.deepEqual(none.body.ownAccounts, { linux: 'alice', macos: 'alice', windows: 'alice' });
    assert.equal(await storedAccounts(), undefined, 'no mapping left');
    const last = await stack.server!.ctx.c.audit.find({ type: 'user.accounts-changed' }).sort({ seq: -1 }).limit(1).toArray();
    assert.deepEqual(last[0]!.detail.previous, { windows: 'CORP\\alice' });
  });

  it('admins only: other roles get 403 reading or writing users', async () => {
    for (const email of ['alice@corp.example', 'ann@corp.example', 'audrey@corp.example']) {
      const who = as(email);
      const put = await who('PUT', `/api/v1/users/${aliceId()}/accounts`, { linux: 'asmith' });
      assert.equal(put.status, 403, email);
      assert.equal(put.body.error.id, 'auth.forbidden');
      assert.equal((await who('GET', '/api/v1/users')).status, 403, `${email} reads no users`);
    }
    assert.equal(await storedAccounts(), undefined);
    assert.equal((await stack.api.request('PUT', `/api/v1/users/${aliceId()}/accounts`, { linux: 'asmith' })).status, 200, 'the config\'s admin token may');
  });

  it('a temporary-access request names no account; its approval makes a temporary account for the requester', async () => {
    await root('PUT', `/api/v1/users/${aliceId()}/accounts`, { linux: 'asmith' });
    const filed = await alice('POST', '/api/v1/requests', ask('lin-1', { operation: 'temporary-access', group: 'Users' }));
    assert.equal(filed.status, 201, JSON.stringify(filed.body));
    assert.equal(filed.body.operation, 'temporary-access');
    assert.equal(filed.body.account, null);
    const named = await alice('POST', '/api/v1/requests', ask('mac-1', { operation: 'temporary-access', account: 'asmith' }));
    assert.equal(named.status, 400);
    assert.match(named.body.error.fields[0].message, /temporary-access makes a new account: name none/);
    const approved = await ann('POST', `/api/v1/requests/${filed.body.id}/approve`, {});
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    const g = await stack.api.grant(approved.body.grant.id);
    assert.equal(g.operation, 'temporary-access');
    assert.equal(g.email, 'alice@corp.example');
    assert.equal(g.account ?? null, null);
  });
});
