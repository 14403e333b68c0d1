import assert from 'node:assert/strict';
import { createUser } from '../../server/web/users.ts';
import { ADMIN_TOKEN, grantBody } from '../support/stack.ts';
import { ConsoleClient } from './consoleClient.ts';
import { OutageStack, timed, type Timed } from '../support/outageStack.ts';

/**
 * The API and the console with the database stopped (killed) or frozen (SIGSTOP: connections
 * are accepted, nothing is answered), over real HTTP against a real FerretDB: every request
 * that needs the database is answered within 5 s with 503 db.unavailable and Retry-After,
 * nothing is half-stored, /healthz says so and /livez does not care, and requests succeed
 * again once the database is back, without a server restart.
 */
describe('the API while the database is down', function () {
  this.timeout(180_000);
  const BOUND_MS = 5000;
  let s: OutageStack;
  let endpointId: string;
  let cookie: string;

  before(async () => {
    s = await OutageStack.start();
    await createUser(s.server!.ctx, { email: 'outage@example.com', role: 'admin', password: 'outage password 1' }, 'test');
    const web = new ConsoleClient(s.api.url);
    assert.equal((await web.login('outage@example.com', 'outage password 1')).status, 303);
    cookie = `jit_session=${web.cookie('jit_session')}`;
    const { body } = await s.api.request('POST', '/api/v1/enrollment-tokens');
    endpointId = (await s.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'outage-box', os: 'linux', agentVersion: 't' })).body.endpointId;
    assert.equal((await s.api.request('POST', '/api/v1/grants', grantBody(endpointId, 3600, 600))).status, 201);
  });
  after(() => s?.stop());

  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const probes = {
    list: () => timed(`${s.api.url}/api/v1/grants`, { headers: admin }),
    create: () =>
      timed(`${s.api.url}/api/v1/grants`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(grantBody(endpointId, 3600, 600)) }),
    page: () => timed(`${s.api.url}/grants`, { headers: { cookie } }),
  };

  function assertUnavailable(name: string, t: Timed): void {
    const what = `${name}: ${t.status} after ${t.ms} ms ${t.text.slice(0, 200)}`;
    assert.ok(t.status !== 0 && t.ms < BOUND_MS, `${name} must answer within ${BOUND_MS} ms (${what})`);
    assert.equal(t.status, 503, what);
    assert.equal(t.headers.get('retry-after'), String(s.config.retryAfterSeconds), `${name}: Retry-After`);
    if (name === 'page') {
      assert.match(t.text, /The database is unreachable/, what);
      assert.match(t.text, /data-error-id="db\.unavailable"/);
      assert.doesNotMatch(t.text, /Something (went|is) wrong/);
    } else {
      assert.equal(t.body?.error?.id, 'db.unavailable', what);
    }
  }

  /** Probes everything in rounds for `ms`; returns the slowest answer seen. */
  async function unavailableFor(ms: number): Promise<number> {
    let slowest = 0;
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const round = await Promise.all(Object.entries(probes).map(async ([name, p]) => [name, await p()] as const));
      for (const [name, t] of round) {
        assertUnavailable(name, t);
        slowest = Math.max(slowest, t.ms);
      }
      const [health, live] = await Promise.all([timed(`${s.api.url}/healthz`), timed(`${s.api.url}/livez`)]);
      assert.equal(health.status, 503, `healthz: ${health.status} ${health.text}`);
      assert.deepEqual(health.body, { ok: false, db: 'unreachable' });
      assert.ok(health.ms < 1500, `healthz took ${health.ms} ms`);
      assert.equal(live.status, 200, `livez: ${live.status}`);
    }
    return slowest;
  }

  const counts = async () => {
    const { c } = s.server!.ctx;
    return { grants: await c.grants.countDocuments(), audit: await c.audit.countDocuments(), instructions: await c.instructions.countDocuments() };
  };

  /** Time from the database's return to the first grant list that succeeds. */
  async function recovery(): Promise<number> {
    const back = Date.now();
    for (;;) {
      const t = await probes.list();
      if (t.status === 200) return Date.now() - back;
      assert.ok(Date.now() - back < 10_000, `still ${t.status} 10 s after the database came back`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function servesAgain(): Promise<void> {
    const health = await timed(`${s.api.url}/healthz`);
    assert.equal(health.status, 200, health.text);
    assert.deepEqual(health.body, { ok: true, db: 'reachable' });
    assert.equal((await probes.create()).status, 201);
    assert.equal((await probes.page()).status, 200);
  }

  it('answers /livez and /healthz 200 while the database is up', async () => {
    const [health, live] = await Promise.all([timed(`${s.api.url}/healthz`), timed(`${s.api.url}/livez`)]);
    assert.equal(live.status, 200);
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { ok: true, db: 'reachable' });
  });

  it('with the database up, its time limits cut neither a long-poll nor the scheduler: a poll longer than the socket timeout gets its Agenda-queued instruction, and an idle one waits its full time', async () => {
    const { body } = await s.api.request('POST', '/api/v1/enrollment-tokens');
    const { endpointId: id, credential } = (await s.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'poll-box', os: 'linux', agentVersion: 't' })).body;
    const poll = (wait: number) => timed(`${s.api.url}/agent/v1/instructions?wait=${wait}`, { headers: { authorization: `Bearer ${credential}` } }, 30_000);
    const startIn = s.config.leadTimeSeconds + s.config.db.socketTimeoutMS / 1000 + 1;
    const created = await s.api.request('POST', '/api/v1/grants', grantBody(id, startIn, 600));
    const grantId = created.body.grants[0].id;
    const first = await poll(0);
    const ack = async (t: Timed) => {
      const ids = t.body.instructions.map((i: { id: string }) => i.id);
      await timed(`${s.api.url}/agent/v1/acks`, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, body: JSON.stringify({ ids }) });
    };
    await ack(first);
    // The grant.enable job falls due after the socket timeout, while this poll waits.
    const enable = await poll(20);
    assert.equal(enable.status, 200, enable.text);
    assert.ok(enable.ms > s.config.db.socketTimeoutMS, `answered after ${enable.ms} ms`);
    assert.deepEqual(
      enable.body.instructions.map((i: { kind: string; plan: { grantId: string } }) => [i.kind, i.plan.grantId]),
      [['enable', grantId]],
    );
    await ack(enable);
    const idle = await poll(s.config.db.socketTimeoutMS / 1000 + 2);
    assert.equal(idle.status, 200, idle.text);
    assert.deepEqual(idle.body.instructions, []);
    assert.ok(idle.ms >= s.config.db.socketTimeoutMS + 1900, `an idle poll answered after ${idle.ms} ms`);
  });

  it('database stopped: list, create and a console page get 503 db.unavailable with Retry-After within 5 s for as long as it lasts, nothing is stored, and it serves again once the database is back', async () => {
    const before = await counts();
    await s.stopDb();
    // 12 s: past the ~7 s after which the driver used to wait out its 30 s server selection.
    const slowest = await unavailableFor(12_000);
    await s.startDb();
    const took = await recovery();
    console.log(`      stopped: slowest answer ${slowest} ms; serving again ${took} ms after the database was back`);
    assert.ok(took < 5000, `recovered after ${took} ms`);
    assert.deepEqual(await counts(), before, 'nothing may be stored by the refused requests');
    await servesAgain();
  });

  it('database frozen (SIGSTOP): the same, and its single pooled connection is not left stuck', async () => {
    const before = await counts();
    s.freezeDb();
    // 12 s: past the socket timeout of the call in flight, the failed handshakes and the monitor's.
    const slowest = await unavailableFor(12_000);
    s.thawDb();
    const took = await recovery();
    console.log(`      frozen: slowest answer ${slowest} ms; serving again ${took} ms after the database was thawed`);
    assert.ok(took < 5000, `recovered after ${took} ms`);
    // What the frozen database had received but not run is run now: none of it may be a write.
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await counts(), before, 'nothing may be stored by the refused requests');
    await servesAgain();
  });
});
