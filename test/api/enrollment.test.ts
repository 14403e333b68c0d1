import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { grantBody, startStack, type Stack } from '../support/stack.ts';

const machine = (name: string) => createHash('sha256').update(name).digest('hex');

/** Enrollment: hostnames that are valid and unique, re-enrollment of the same machine, token lifetimes. */
describe('enrollment: hostnames, re-enrollment and token lifetime', function () {
  this.timeout(120_000);
  let stack: Stack;

  before(async () => {
    stack = await startStack();
  });
  after(() => stack?.stop());

  const token = async (body?: unknown) => (await stack.api.request('POST', '/api/v1/enrollment-tokens', body)).body.token as string;
  const enroll = (body: Record<string, unknown>) => stack.api.request('POST', '/agent/v1/enroll', { os: 'linux', agentVersion: 't', ...body });
  const asAgent = (credential: string) => fetch(`${stack.api.url}/agent/v1/settings`, { headers: { authorization: `Bearer ${credential}` } });
  const endpoints = () => stack.server!.ctx.c.endpoints.countDocuments();

  describe('hostname validation', () => {
    for (const [what, hostname] of [
      ['CR/LF and a header', 'evil\r\nBcc: victim@example.com'],
      ['a space', 'my host'],
      ['an underscore', 'my_host'],
      ['a label starting with a hyphen', '-host.example.com'],
      ['a label ending with a hyphen', 'host-.example.com'],
      ['an empty label', 'host..example.com'],
      ['a label over 63 characters', `${'a'.repeat(64)}.example.com`],
      ['over 253 characters', `${'a'.repeat(60)}.`.repeat(4) + 'a'.repeat(10)],
      ['non-ASCII letters', 'hôte'],
    ] as const) {
      it(`refuses ${what} with 400 on the hostname field, storing nothing and keeping the token`, async () => {
        const t = await token();
        const before = await endpoints();
        const res = await enroll({ token: t, hostname });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.id, 'validation.failed');
        assert.deepEqual(res.body.error.fields.map((f: { field: string }) => f.field), ['hostname']);
        assert.equal(await endpoints(), before);
        assert.equal((await enroll({ token: t, hostname: `ok-${randomUUID().slice(0, 8)}` })).status, 201, 'the token is still good');
      });
    }

    it('accepts a dotted name of RFC 1123 labels', async () => {
      const res = await enroll({ token: await token(), hostname: `Web-01.corp-${randomUUID().slice(0, 6)}.example.com` });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    });
  });

  describe('unique hostnames', () => {
    it('re-enrolling the same machine replaces its record: same endpoint, old credential refused', async () => {
      const first = await enroll({ token: await token(), hostname: 'reborn', machineId: machine('reborn') });
      assert.equal(first.status, 201);
      assert.equal((await asAgent(first.body.credential)).status, 200, 'cached now');
      const again = await enroll({ token: await token(), hostname: 'reborn', machineId: machine('reborn'), os: 'linux', agentVersion: 't2' });
      assert.equal(again.status, 201, JSON.stringify(again.body));
      assert.equal(again.body.endpointId, first.body.endpointId);
      assert.equal((await asAgent(first.body.credential)).status, 401, 'the old credential stops working');
      assert.equal((await asAgent(again.body.credential)).status, 200);
      const listed = (await stack.api.request('GET', '/api/v1/endpoints')).body.endpoints.filter((e: { hostname: string }) => e.hostname === 'reborn');
      assert.equal(listed.length, 1);
      assert.equal(listed[0].agentVersion, 't2');
      const grant = await stack.api.request('POST', '/api/v1/grants', grantBody('REBORN', 60, 600, { group: 'Users' }));
      assert.equal(grant.status, 201);
      assert.equal(grant.body.grants[0].endpoint.id, first.body.endpointId);
    });

    it('hands the live grants of a re-enrolled machine to its new agent; a revoked one only to be ended', async () => {
      const first = await enroll({ token: await token(), hostname: 'reinstalled', machineId: machine('reinstalled') });
      const live = (await stack.api.request('POST', '/api/v1/grants', grantBody('reinstalled', 60, 600, { group: 'Users' }))).body.grants[0].id;
      const revoked = (await stack.api.request('POST', '/api/v1/grants', grantBody('reinstalled', 60, 600, { group: 'Users' }))).body.grants[0].id;
      assert.equal((await stack.api.request('POST', `/api/v1/grants/${revoked}/revoke`)).status, 200);
      // The old agent took everything it was sent.
      const { c } = stack.server!.ctx;
      await c.instructions.updateMany({ endpointId: first.body.endpointId }, { $set: { ackedAt: new Date() } });
      const again = await enroll({ token: await token(), hostname: 'reinstalled', machineId: machine('reinstalled') });
      const poll = await fetch(`${stack.api.url}/agent/v1/instructions?wait=0`, { headers: { authorization: `Bearer ${again.body.credential}` } });
      const sent = ((await poll.json()) as { instructions: { kind: string; plan: { grantId: string } }[] }).instructions.map((i) => `${i.plan.grantId}:${i.kind}`);
      assert.deepEqual(sent.sort(), [`${live}:provision`, `${revoked}:revoke`].sort());
    });

    it('a re-enrollment repeated before the new agent took the handover (a retry after a failure) hands nothing over twice', async () => {
      const first = await enroll({ token: await token(), hostname: 'retried', machineId: machine('retried') });
      const live = (await stack.api.request('POST', '/api/v1/grants', grantBody('retried', 60, 600, { group: 'Users' }))).body.grants[0].id;
      const { c } = stack.server!.ctx;
      await c.instructions.updateMany({ endpointId: first.body.endpointId }, { $set: { ackedAt: new Date() } });
      for (let i = 0; i < 2; i++) assert.equal((await enroll({ token: await token(), hostname: 'retried', machineId: machine('retried') })).status, 201);
      const open = await c.instructions.find({ grantId: live, ackedAt: null }).toArray();
      assert.deepEqual(open.map((x) => x.kind), ['provision']);
      assert.equal(await c.audit.countDocuments({ grantId: live, type: 'grant.handed-over' }), 1);
    });

    it('refuses a taken hostname from another machine, or without a machine identity (409), keeping the token', async () => {
      assert.equal((await enroll({ token: await token(), hostname: 'taken-box', machineId: machine('one') })).status, 201);
      const t = await token();
      const before = await endpoints();
      for (const body of [
        { token: t, hostname: 'taken-box', machineId: machine('two') },
        { token: t, hostname: 'TAKEN-BOX', machineId: machine('two') },
        { token: t, hostname: 'taken-box' },
      ]) {
        const res = await enroll(body);
        assert.equal(res.status, 409, JSON.stringify(res.body));
        assert.equal(res.body.error.id, 'endpoint.hostname_taken');
      }
      assert.equal(await endpoints(), before);
      assert.equal((await enroll({ token: t, hostname: 'taken-box-2' })).status, 201, 'the token is still good');
    });

    it('lets only one of parallel enrollments of a new hostname in', async () => {
      const tokens = await Promise.all([1, 2, 3, 4].map(() => token()));
      const res = await Promise.all(tokens.map((t) => enroll({ token: t, hostname: 'racer' })));
      assert.deepEqual(res.map((r) => r.status).sort(), [201, 409, 409, 409]);
      assert.equal(await stack.server!.ctx.c.endpoints.countDocuments({ hostname: 'racer' }), 1);
    });

    it('refuses a grant for a hostname two records share (made before this rule), listing their ids', async () => {
      const ids = [randomUUID(), randomUUID()];
      const now = new Date();
      await stack.server!.ctx.c.endpoints.insertMany(ids.map((_id) => ({ _id, hostname: 'twin', os: 'linux' as const, agentVersion: 't', credentialHash: 'x', enrolledAt: now, lastSeenAt: now })));
      const before = await stack.server!.ctx.c.grants.countDocuments();
      const res = await stack.api.request('POST', '/api/v1/grants', grantBody('twin', 60, 600, { group: 'Users' }));
      assert.equal(res.status, 400, JSON.stringify(res.body));
      const issue = res.body.error.fields.find((f: { field: string }) => f.field === 'endpoints.0');
      assert.ok(issue, JSON.stringify(res.body));
      for (const id of ids) assert.ok(issue.message.includes(id), issue.message);
      assert.equal(await stack.server!.ctx.c.grants.countDocuments(), before);
      const byId = await stack.api.request('POST', '/api/v1/grants', grantBody(ids[0]!, 60, 600, { group: 'Users' }));
      assert.equal(byId.status, 201, 'an id still picks one');
    });
  });

  describe('token lifetime (ttlMinutes)', () => {
    it('honours ttlMinutes', async () => {
      const t0 = Date.now();
      const res = await stack.api.request('POST', '/api/v1/enrollment-tokens', { ttlMinutes: 5 });
      assert.equal(res.status, 201);
      const ttl = Date.parse(res.body.expiresAt) - t0;
      assert.ok(ttl > 4.9 * 60_000 && ttl < 5.1 * 60_000, `expires in ${ttl} ms`);
    });

    it('uses the configured lifetime without a body', async () => {
      const t0 = Date.now();
      const res = await stack.api.request('POST', '/api/v1/enrollment-tokens');
      assert.equal(res.status, 201);
      const ttl = Date.parse(res.body.expiresAt) - t0;
      assert.ok(Math.abs(ttl - stack.config.enrollmentTokenTtlMinutes * 60_000) < 5_000, `expires in ${ttl} ms`);
    });

    for (const [what, body, field] of [
      ['zero', { ttlMinutes: 0 }, 'ttlMinutes'],
      ['more than a week', { ttlMinutes: 10_081 }, 'ttlMinutes'],
      ['a fraction', { ttlMinutes: 1.5 }, 'ttlMinutes'],
      ['a string', { ttlMinutes: '60' }, 'ttlMinutes'],
      ['an unknown field', { ttl: 60 }, 'ttl'],
    ] as const) {
      it(`refuses ${what} with 400, storing no token`, async () => {
        const before = await stack.server!.ctx.c.enrollmentTokens.countDocuments();
        const res = await stack.api.request('POST', '/api/v1/enrollment-tokens', body);
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.deepEqual(res.body.error.fields.map((f: { field: string }) => f.field), [field]);
        assert.equal(await stack.server!.ctx.c.enrollmentTokens.countDocuments(), before);
      });
    }
  });
});
