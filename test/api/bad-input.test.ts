import assert from 'node:assert/strict';
import { grantBody, startStack, type Stack } from '../support/stack.ts';

/** Every rejection of the grant API: a 400 naming the field, and nothing stored. */
describe('grants API: bad input', function () {
  this.timeout(120_000);
  let stack: Stack;
  let linux: string;
  let windows: string;

  before(async () => {
    stack = await startStack({ maxDurationMinutes: 60, startPastToleranceSeconds: 60 });
    linux = await enrollDirect(stack, 'linux-box', 'linux');
    windows = await enrollDirect(stack, 'win-box', 'windows');
  });
  after(() => stack?.stop());

  async function enrollDirect(s: Stack, hostname: string, os: string): Promise<string> {
    const { body } = await s.api.request('POST', '/api/v1/enrollment-tokens');
    const res = await s.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os, agentVersion: 't' });
    assert.equal(res.status, 201);
    return res.body.endpointId;
  }

  async function counts() {
    const { c } = stack.server!.ctx;
    return { grants: await c.grants.countDocuments(), instructions: await c.instructions.countDocuments(), jobs: await stack.server!.db.collection('agendaJobs').countDocuments() };
  }

  async function rejects(body: unknown, field: string, match: RegExp, headers: Record<string, string> = {}) {
    const before = await counts();
    const res = await stack.api.request('POST', '/api/v1/grants', body, headers);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    const fields = res.body.error.fields ?? [];
    const hit = field === '(none)' ? res.body.error : fields.find((f: { field: string }) => f.field === field);
    assert.ok(hit, `no error for ${field}: ${JSON.stringify(res.body)}`);
    assert.match(hit.message, match);
    assert.deepEqual(await counts(), before, 'nothing may be stored');
  }

  it('accepts a valid request (the baseline the rejections differ from)', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(linux, 60, 600));
    assert.equal(res.status, 201);
    assert.equal(res.body.grants.length, 1);
  });

  it('rejects a malformed email', () => rejects(grantBody(linux, 60, 600, { email: 'not-an-email' }), 'email', /valid email/));
  it('rejects an email with CR/LF', () => rejects(grantBody(linux, 60, 600, { email: 'a@b.com\r\nBcc: x@y.z' }), 'email', /valid email/));
  it('rejects an end that is not after the start', () => rejects(grantBody(linux, 60, 0), 'endAt', /after startAt/));
  it('rejects a start too far in the past', () => rejects(grantBody(linux, -3600, 600), 'startAt', /in the past/));
  it('rejects a duration above the maximum', () => rejects(grantBody(linux, 60, 2 * 3600), 'endAt', /at most 60 minutes/));
  it('rejects an unknown endpoint', () => rejects(grantBody('no-such-host', 60, 600), 'endpoints.0', /unknown endpoint/));
  it('rejects an unknown group', () => rejects(grantBody(linux, 60, 600, { group: 'Root' }), 'group', /one of Administrators/));
  it('rejects a group the endpoint OS cannot honour, naming the OS', () =>
    rejects(grantBody(linux, 60, 600, { group: 'Power Users' }), 'group', /Linux endpoint linux-box has no "Power Users"/));
  it('accepts Power Users on Windows', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(windows, 60, 600, { group: 'Power Users' }));
    assert.equal(res.status, 201);
  });
  it('rejects an unknown operation', () => rejects(grantBody(linux, 60, 600, { operation: 'permanent-access' }), 'operation', /temporary-access/));
  it('rejects unknown extra fields', () => rejects(grantBody(linux, 60, 600, { password: 'x' }), 'password', /unknown field/));
  it('rejects a missing field', () => {
    const { serverSideSmtp: _drop, ...body } = grantBody(linux, 60, 600);
    return rejects(body, 'serverSideSmtp', /required/);
  });
  it('rejects a date without a time zone', () => rejects(grantBody(linux, 60, 600, { startAt: '2030-01-01T10:00:00' }), 'startAt', /time zone/));
  it('rejects a start past year 9999 (the offset pushing it there)', () =>
    rejects(grantBody(linux, 60, 600, { startAt: '9999-12-31T23:00:00-23:59', endAt: '9999-12-31T23:30:00-23:59' }), 'startAt', /days ahead/));
  it('rejects an end past year 9999', () => rejects(grantBody(linux, 60, 600, { endAt: '9999-12-31T23:59:59-23:59' }), 'endAt', /at most 60 minutes/));
  it('rejects a start beyond the horizon (maxStartAheadDays)', () => {
    const start = Date.now() + 366 * 86_400_000;
    return rejects(grantBody(linux, 60, 600, { startAt: new Date(start).toISOString(), endAt: new Date(start + 600_000).toISOString() }), 'startAt', /at most 365 days ahead/);
  });
  it('rejects a date in an expanded-year form', () => rejects(grantBody(linux, 60, 600, { startAt: '+002030-01-01T10:00:00Z' }), 'startAt', /ISO 8601/));
  it('rejects a body that is not JSON', () => rejects('{"operation": ', '(none)', /JSON/));
  it('rejects a body of another content type', () => rejects('email=a@b.c', '(none)', /JSON/, { 'content-type': 'application/x-www-form-urlencoded' }));
  it('rejects an oversized body', () => rejects(grantBody(linux, 60, 600, { email: `${'a'.repeat(40_000)}@example.com` }), '(none)', /too large/));

  it('names every bad field at once', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', { operation: 'x', email: 'y', endpoints: [], group: 'z', startAt: 'soon', endAt: 'later', serverSideSmtp: 'yes' });
    assert.equal(res.status, 400);
    const fields = res.body.error.fields.map((f: { field: string }) => f.field).sort();
    assert.deepEqual(fields, ['email', 'endAt', 'endpoints', 'group', 'operation', 'serverSideSmtp', 'startAt']);
  });

  it('refuses the admin API without the admin token, and the agent API without a credential', async () => {
    const res = await fetch(`${stack.api.url}/api/v1/grants`);
    assert.equal(res.status, 401);
    const wrong = await stack.api.request('GET', '/api/v1/grants', undefined, { authorization: 'Bearer nope-nope-nope-nope' });
    assert.equal(wrong.status, 401);
    const agent = await fetch(`${stack.api.url}/agent/v1/instructions?wait=0`, { headers: { authorization: `Bearer ${linux}.forged` } });
    assert.equal(agent.status, 401);
  });

  it('accepts an enrollment token only once', async () => {
    const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
    const enroll = () => stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'h', os: 'linux', agentVersion: 't' });
    assert.equal((await enroll()).status, 201);
    const again = await enroll();
    assert.equal(again.status, 401);
    assert.equal(again.body.error.id, 'enrollment.invalid_token');
  });

  it('lets only one of several agents racing with one token enroll', async () => {
    const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
    const before = await stack.server!.ctx.c.endpoints.countDocuments();
    const race = await Promise.all([1, 2, 3, 4].map((n) => stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: `race-${n}`, os: 'linux', agentVersion: 't' })));
    assert.deepEqual(race.map((r) => r.status).sort(), [201, 401, 401, 401]);
    assert.equal(await stack.server!.ctx.c.endpoints.countDocuments(), before + 1);
  });
});
