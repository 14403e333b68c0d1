import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createUser } from '../../server/web/users.ts';
import { grantBody, startStack, type Stack } from '../support/stack.ts';
import { ConsoleClient } from './consoleClient.ts';

/** Searching grants and the audit log by email ignores letter case, and shows the email as typed. */
describe('email search ignores letter case', function () {
  this.timeout(120_000);
  let stack: Stack;
  let endpointId: string;
  let web: ConsoleClient;

  before(async () => {
    stack = await startStack();
    const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
    endpointId = (await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'case-box', os: 'linux', agentVersion: 't' })).body.endpointId;
    await createUser(stack.server!.ctx, { email: 'case@example.com', role: 'admin', password: 'case password 12' }, 'test');
    web = new ConsoleClient(stack.api.url);
    assert.equal((await web.login('case@example.com', 'case password 12')).status, 303);
  });
  after(() => stack?.stop());

  const apiSearch = async (email: string) => (await stack.api.request('GET', `/api/v1/grants?email=${encodeURIComponent(email)}`)).body.grants as { id: string; email: string }[];
  const pageHas = async (path: string, id: string) => (await web.get(path)).text.includes(id);

  it('finds a grant by any case of its email, and shows it as typed', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(endpointId, 60, 600, { email: 'Alice.Smith@Example.COM' }));
    assert.equal(res.status, 201);
    const id = res.body.grants[0].id;
    for (const q of ['alice.smith@example.com', 'ALICE.SMITH@EXAMPLE.COM', 'Alice.Smith@Example.COM']) {
      const found = await apiSearch(q);
      assert.deepEqual(found.map((g) => g.id), [id], `API search ${q}`);
      assert.equal(found[0]!.email, 'Alice.Smith@Example.COM');
      assert.ok(await pageHas(`/grants?email=${encodeURIComponent(q)}`, id), `grants page ${q}`);
      assert.ok(await pageHas(`/audit?email=${encodeURIComponent(q)}`, id), `audit page ${q}`);
    }
  });

  it('finds records stored before the normalised field existed (after a restart)', async () => {
    const { c } = stack.server!.ctx;
    const id = randomUUID();
    const now = new Date();
    const start = new Date(Date.now() + 60_000);
    // As an earlier version stored them: no normalised email anywhere.
    await c.grants.insertOne({
      _id: id, requestId: randomUUID(), operation: 'temporary-access', email: 'Old.Timer@Example.com', endpointId, hostname: 'case-box', group: 'Users',
      startAt: start, enableAt: start, endAt: new Date(start.getTime() + 600_000), serverSideSmtp: false, state: 'removed', revokeRequested: false,
      delivery: { status: 'sent', attempts: 1 }, createdBy: 'admin', createdAt: now, updatedAt: now,
    });
    await stack.server!.db.collection('audit').insertOne({ _id: randomUUID() as never, at: now, seq: Date.now() * 1000, actor: 'system', type: 'legacy.event', detail: { email: 'Old.Timer@Example.com', note: id } });
    // A database of that version has not run the migration either.
    await stack.server!.db.collection('migrations').deleteMany({});
    await stack.stopServer();
    await stack.startServer();
    await web.login('case@example.com', 'case password 12');
    assert.deepEqual((await apiSearch('old.timer@example.com')).map((g) => g.id), [id]);
    assert.ok(await pageHas('/grants?email=OLD.TIMER%40EXAMPLE.COM', id));
    const audit = (await web.get('/audit?email=old.timer%40example.com')).text;
    assert.ok(audit.includes('legacy.event'), 'an event naming the email in another case');
  });
});
