import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { createUser } from '../../server/web/users.ts';
import { ADMIN_TOKEN, grantBody } from '../support/stack.ts';
import { OutageStack, timed } from '../support/outageStack.ts';
import { ConsoleClient } from './consoleClient.ts';

const machine = (name: string) => createHash('sha256').update(name).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Writes that must not be answered "try again" while they go on: a grant create (API and
 * console) and an agent's enrollment leave the request deadline at their first write, and
 * still fail fast when the database is really down, by the driver's own limits. A database
 * that is slow while they write is played by freezing FerretDB (SIGSTOP) at that moment for
 * less than the socket timeout, against a 1 s deadline. An `Idempotency-Key` makes a create
 * safe to repeat.
 */
describe('non-idempotent writes and the request deadline', function () {
  this.timeout(240_000);
  /** Longer than the 1 s deadline below, shorter than the driver's 2–3 s limits. */
  const SLOW_MS = 1500;
  let s: OutageStack;
  let endpointId: string;

  before(async () => {
    s = await OutageStack.start({ requestDeadlineSeconds: 1 });
    endpointId = await endpointIn(s, 'slow-box');
  });
  after(() => s?.stop());
  afterEach(async () => {
    s.thawDb();
    await s.startDb();
  });

  const create = (body: unknown, headers: Record<string, string> = {}) => createIn(s, body, headers);

  /** Freezes the database for `ms` when the create's writes reach the scheduler (its third step). */
  function slowAtFirstSchedule(ms: number): void {
    const sched = s.server!.ctx.scheduler;
    const schedule = sched.schedule;
    sched.schedule = (...args) => {
      sched.schedule = schedule;
      s.freezeDb();
      setTimeout(() => s.thawDb(), ms);
      return schedule(...args);
    };
  }

  it('API: a create whose writes outlast the deadline answers 201 with its grants, not 503', async () => {
    const before = await counts(s);
    slowAtFirstSchedule(SLOW_MS);
    const res = await create(grantBody(endpointId, 3600, 600));
    console.log(`      slow create: ${res.status} after ${res.ms} ms`);
    assert.equal(res.status, 201, `${res.status} after ${res.ms} ms: ${res.text.slice(0, 200)}`);
    assert.equal(res.body.grants.length, 1);
    assert.equal((await counts(s)).grants, before.grants + 1);
  });

  it('console: a wizard create whose writes outlast the deadline goes to the new grant, not to a 503 page', async () => {
    await createUser(s.server!.ctx, { email: 'slow@example.com', role: 'admin', password: 'slow password 1' }, 'test');
    const web = new ConsoleClient(s.api.url);
    assert.equal((await web.login('slow@example.com', 'slow password 1')).status, 303);
    const page = await web.get('/grants/new');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const utc = (ms: number) => new Date(Date.now() + ms).toISOString().slice(0, 19);
    const before = await counts(s);
    const form = { _csrf: csrf, operation: 'temporary-access', email: 'bob@example.com', endpoint: endpointId, group: 'Users', tz: 'UTC', start: utc(3_600_000), end: utc(7_200_000), action: 'create', idem: randomUUID() };
    slowAtFirstSchedule(SLOW_MS);
    const res = await web.request('POST', '/grants/new', form);
    assert.equal(res.status, 303, `${res.status}: ${res.text.slice(0, 300)}`);
    assert.match(res.location ?? '', /^\/grants\/[^/]+\?created=1$/);
    assert.equal((await counts(s)).grants, before.grants + 1);
    const again = await web.request('POST', '/grants/new', form);
    assert.equal(again.location, res.location, 'the same form sent again goes to the same grant');
    assert.equal((await counts(s)).grants, before.grants + 1, 'and makes none');
  });

  it('enrollment: a re-enrollment whose writes outlast the deadline answers 201 with the credential that works', async () => {
    const token = async () => (await s.api.request('POST', '/api/v1/enrollment-tokens')).body.token as string;
    const body = (t: string) => ({ token: t, hostname: 'slow-enroll', machineId: machine('slow-enroll'), os: 'linux', agentVersion: 't' });
    assert.equal((await s.api.request('POST', '/agent/v1/enroll', body(await token()))).status, 201);
    const t = await token();
    const cache = s.server!.ctx.endpointCache;
    const replaced = cache.replaced.bind(cache);
    cache.replaced = (e) => {
      cache.replaced = replaced;
      s.freezeDb();
      setTimeout(() => s.thawDb(), SLOW_MS);
      replaced(e);
    };
    const res = await timed(`${s.api.url}/agent/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(t)) });
    assert.equal(res.status, 201, `${res.status} after ${res.ms} ms: ${res.text.slice(0, 200)}`);
    const settings = await fetch(`${s.api.url}/agent/v1/settings`, { headers: { authorization: `Bearer ${res.body.credential}` } });
    assert.equal(settings.status, 200, 'the credential the agent was given is the one that works');
  });

  describe('Idempotency-Key', () => {
    it('the same key twice gives the same grants, created once', async () => {
      const key = randomUUID();
      const body = grantBody(endpointId, 3600, 600, { email: 'idem@example.com' });
      const before = await counts(s);
      const first = await create(body, { 'idempotency-key': key });
      assert.equal(first.status, 201, first.text);
      const again = await create(body, { 'idempotency-key': key });
      assert.equal(again.status, 201, again.text);
      assert.deepEqual(again.body.grants.map((g: { id: string }) => g.id), first.body.grants.map((g: { id: string }) => g.id));
      const after = await counts(s);
      assert.equal(after.grants, before.grants + 1);
      assert.equal(after.instructions, before.instructions + 1);
      const id = first.body.grants[0].id;
      const timeline = (await s.api.request('GET', `/api/v1/grants/${id}`)).body.timeline.map((e: { type: string }) => e.type);
      assert.deepEqual(timeline, ['grant.requested']);
    });

    it('a key used for another request is refused with 422, storing nothing', async () => {
      const key = randomUUID();
      assert.equal((await create(grantBody(endpointId, 3600, 600), { 'idempotency-key': key })).status, 201);
      const before = await counts(s);
      const other = await create(grantBody(endpointId, 3600, 1200), { 'idempotency-key': key });
      assert.equal(other.status, 422, other.text);
      assert.equal(other.body.error.id, 'idempotency.key_reused');
      assert.deepEqual(await counts(s), before);
    });

    it('a create cut short is completed by its retry with the same key', async () => {
      const key = randomUUID();
      const body = grantBody(endpointId, 3600, 600);
      const first = await create(body, { 'idempotency-key': key });
      const id = first.body.grants[0].id;
      // As if the database had gone after the grant was stored: no instruction, no audit, no jobs.
      const { c } = s.server!.ctx;
      await c.instructions.deleteMany({ grantId: id });
      await c.audit.deleteMany({ grantId: id });
      await s.server!.ctx.scheduler.forget(id);
      const again = await create(body, { 'idempotency-key': key });
      assert.equal(again.status, 201, again.text);
      assert.equal(again.body.grants[0].id, id);
      assert.equal(await c.instructions.countDocuments({ grantId: id, kind: 'provision' }), 1);
      assert.equal(await c.audit.countDocuments({ grantId: id, type: 'grant.requested' }), 1);
      assert.equal(await s.server!.db.collection('agendaJobs').countDocuments({ 'data.grantId': id }), 3);
    });

    it('refuses an unusable key with 400', async () => {
      const res = await create(grantBody(endpointId, 3600, 600), { 'idempotency-key': 'x'.repeat(300) });
      assert.equal(res.status, 400, res.text);
    });
  });
});

/** The same with the default limits (4 s deadline), the database down for real. */
describe('a grant create while the database is down', function () {
  this.timeout(240_000);
  let s: OutageStack;
  let endpointId: string;

  before(async () => {
    s = await OutageStack.start();
    endpointId = await endpointIn(s, 'down-box');
  });
  after(() => s?.stop());
  afterEach(async () => {
    s.thawDb();
    await s.startDb();
  });

  for (const outage of ['stopped', 'frozen'] as const) {
    it(`database ${outage}: answers 503 db.unavailable within 5 s and stores nothing`, async () => {
      const before = await counts(s);
      if (outage === 'stopped') await s.stopDb();
      else s.freezeDb();
      const answers = [];
      for (let i = 0; i < 3; i++) {
        for (const headers of [{}, { 'idempotency-key': randomUUID() }] as Record<string, string>[]) answers.push(await createIn(s, grantBody(endpointId, 3600, 600), headers));
      }
      console.log(`      ${outage}: ${answers.map((a) => `${a.status} after ${a.ms} ms`).join(', ')}`);
      for (const res of answers) {
        assert.equal(res.status, 503, `${res.status} after ${res.ms} ms: ${res.text.slice(0, 200)}`);
        assert.equal(res.body.error.id, 'db.unavailable');
        assert.ok(res.ms < 5000, `answered after ${res.ms} ms`);
      }
      s.thawDb();
      await s.startDb();
      await sleep(1000);
      assert.deepEqual(await counts(s), before, 'nothing stored');
    });
  }

  it('database frozen for good while a create writes: 503 from the driver; the retry with the same key completes it and makes nothing twice', async () => {
    const key = randomUUID();
    const body = grantBody(endpointId, 3600, 600);
    const before = await counts(s);
    const sched = s.server!.ctx.scheduler;
    const schedule = sched.schedule;
    // Frozen a while before the create's first job write, so that Agenda's scans (one per job
    // name every 200 ms, kept up during the outage) queue ahead of it: each would wait for the
    // driver's limits in turn, and the create got no answer at all (CI, 2026-11-30).
    sched.schedule = async (...args) => {
      sched.schedule = schedule;
      s.freezeDb();
      await sleep(1500);
      return schedule(...args);
    };
    const cut = await createIn(s, body, { 'idempotency-key': key });
    console.log(`      frozen mid-create: ${cut.status} after ${cut.ms} ms`);
    assert.equal(cut.status, 503, cut.text);
    assert.ok(cut.ms < 8000, `answered after ${cut.ms} ms`);
    s.thawDb();
    const again = await createIn(s, body, { 'idempotency-key': key });
    assert.equal(again.status, 201, again.text);
    const id = again.body.grants[0].id;
    const after = await counts(s);
    assert.equal(after.grants, before.grants + 1);
    assert.equal(await s.server!.ctx.c.instructions.countDocuments({ grantId: id }), 1);
    assert.equal(await s.server!.db.collection('agendaJobs').countDocuments({ 'data.grantId': id }), 3);
  });

  it('measures a create for 100 endpoints (its writes are out of the deadline)', async () => {
    const ids = [];
    for (let i = 0; i < 100; i++) ids.push(await endpointIn(s, `many-${i}`));
    const res = await createIn(s, { ...grantBody(ids[0]!, 3600, 600), endpoints: ids }, {}, 120_000);
    console.log(`      100 endpoints: ${res.status} after ${res.ms} ms`);
    assert.equal(res.status, 201, res.text.slice(0, 300));
    assert.equal(res.body.grants.length, 100);
  });
});

async function endpointIn(s: OutageStack, hostname: string): Promise<string> {
  const now = new Date();
  const id = randomUUID();
  await s.server!.ctx.c.endpoints.insertOne({ _id: id, hostname, os: 'linux', agentVersion: 't', credentialHash: 'x', enrolledAt: now, lastSeenAt: now });
  return id;
}

function createIn(s: OutageStack, body: unknown, headers: Record<string, string> = {}, limitMs = 15_000) {
  return timed(`${s.api.url}/api/v1/grants`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }, limitMs);
}

async function counts(s: OutageStack) {
  const { c } = s.server!.ctx;
  return { grants: await c.grants.countDocuments(), instructions: await c.instructions.countDocuments(), audit: await c.audit.countDocuments() };
}
