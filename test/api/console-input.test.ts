import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createUser } from '../../server/web/users.ts';
import { startStack, type Stack } from '../support/stack.ts';
import { ConsoleClient, fieldErrors } from './consoleClient.ts';

/** The JIT wizard (a form post, no JavaScript) refuses what the API refuses, and stores nothing. */
describe('console wizard: bad input', function () {
  this.timeout(120_000);
  let stack: Stack;
  let web: ConsoleClient;
  let linux: string;

  before(async () => {
    stack = await startStack();
    await createUser(stack.server!.ctx, { email: 'wizard@example.com', role: 'admin', password: 'wizard password 1' }, 'test');
    web = new ConsoleClient(stack.api.url);
    assert.equal((await web.login('wizard@example.com', 'wizard password 1')).status, 303);
    const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
    linux = (await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'wiz-linux', os: 'linux', agentVersion: 't' })).body.endpointId;
  });
  after(() => stack?.stop());

  const grants = () => stack.server!.ctx.c.grants.countDocuments();
  const utc = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString().slice(0, 19);

  async function refused(form: Record<string, string>, field: string, match: RegExp) {
    const before = await grants();
    for (const action of ['', 'create']) {
      const page = await web.post('/grants/new', { operation: 'temporary-access', email: 'bob@example.com', endpoint: linux, group: 'Users', tz: 'UTC', action, ...form }, '/grants/new');
      assert.equal(page.status, 400, `action "${action}": ${page.status}`);
      const errors = fieldErrors(page.text);
      assert.ok(errors[field], `no error on ${field}: ${JSON.stringify(errors)}`);
      assert.match(errors[field]!, match);
    }
    assert.equal(await grants(), before, 'nothing may be stored');
  }

  it('accepts a valid form (the baseline)', async () => {
    const page = await web.post('/grants/new', { operation: 'temporary-access', email: 'bob@example.com', endpoint: linux, group: 'Users', tz: 'UTC', start: utc(60_000), end: utc(3_660_000), action: 'create' }, '/grants/new');
    assert.equal(page.status, 303, page.text.slice(0, 500));
  });

  it('refuses a start in year 9999 in Etc/GMT+12 (year 10000 in UTC)', () =>
    refused({ tz: 'Etc/GMT+12', start: '9999-12-31T23:00', end: '9999-12-31T23:30' }, 'start', /days ahead/));

  it('refuses a start beyond the horizon', () => refused({ start: utc(400 * 86_400_000), end: utc(400 * 86_400_000 + 3_600_000) }, 'start', /at most 365 days ahead/));

  it('refuses a hostname two endpoints share, listing their ids', async () => {
    const ids = [randomUUID(), randomUUID()];
    const now = new Date();
    await stack.server!.ctx.c.endpoints.insertMany(ids.map((_id) => ({ _id, hostname: 'wiz-twin', os: 'linux' as const, agentVersion: 't', credentialHash: 'x', enrolledAt: now, lastSeenAt: now })));
    await refused({ endpoint: 'wiz-twin', start: utc(60_000), end: utc(3_660_000) }, 'endpoint', new RegExp(`${ids[0]}.*${ids[1]}|${ids[1]}.*${ids[0]}`));
  });
});
