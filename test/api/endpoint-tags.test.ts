import assert from 'node:assert/strict';
import type { Role } from '../../server/store/collections.ts';
import { createApiToken, createUser } from '../../server/web/users.ts';
import { startStack, type Stack } from '../support/stack.ts';

/**
 * Endpoint tags (`PUT /api/v1/endpoints/:id/tags`): set by admins, lower-cased and checked per tag
 * with nothing stored on a refusal, shown in `GET /api/v1/endpoints`, audited, kept when the same
 * machine enrolls again; and the request rules' `tags` condition decides requests by them.
 */
describe('endpoint tags (API)', function () {
  this.timeout(120_000);
  let stack: Stack;
  const tokens: Record<string, string> = {};
  const endpoints: Record<string, string> = {};

  async function enroll(hostname: string, machineId: string) {
    const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
    const enrolled = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os: 'linux', agentVersion: 't', machineId });
    assert.equal(enrolled.status, 201, JSON.stringify(enrolled.body));
    return enrolled.body.endpointId as string;
  }

  before(async () => {
    stack = await startStack({ requests: { expireAfterMinutes: 60, reasonRequired: true, reasonMinLength: 10, maxMinutes: 240, groups: ['Administrators', 'Users'] } });
    for (const [i, hostname] of ['db-1', 'db-2', 'ws-1'].entries()) endpoints[hostname] = await enroll(hostname, String(i).repeat(64));
    const people: [string, Role][] = [['alice@corp.example', 'requester'], ['olga@corp.example', 'operator'], ['ann@corp.example', 'approver'], ['root@corp.example', 'admin']];
    for (const [email, role] of people) tokens[email] = await createApiToken(stack.server!.ctx, await createUser(stack.server!.ctx, { email, role, password: 'correct horse battery staple 1' }, 'test'));
  });
  after(() => stack?.stop());
  beforeEach(async () => {
    const { c } = stack.server!.ctx;
    await c.requests.deleteMany({});
    await c.requestRules.deleteMany({});
    await c.endpoints.updateMany({}, { $unset: { tags: '' } });
  });

  const as = (email: string) => (method: string, p: string, body?: unknown) => stack.api.request(method, p, body, { authorization: `Bearer ${tokens[email]}` });
  const root = as('root@corp.example');
  const alice = as('alice@corp.example');
  const tagsOf = async (id: string) => (await stack.server!.ctx.c.endpoints.findOne({ _id: id }))?.tags;
  const listed = async (who = root) => (await who('GET', '/api/v1/endpoints')).body.endpoints as { id: string; tags: string[] }[];

  it('an admin sets an endpoint\'s tags (lower-cased, each once), by id or hostname; the list shows them; audited', async () => {
    const put = await root('PUT', `/api/v1/endpoints/${endpoints['db-1']}/tags`, { tags: ['Prod', 'pci', 'prod', ' eu-west.1_a '] });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.id, endpoints['db-1']);
    assert.equal(put.body.hostname, 'db-1');
    assert.deepEqual(put.body.tags, ['prod', 'pci', 'eu-west.1_a']);
    assert.deepEqual(await tagsOf(endpoints['db-1']!), ['prod', 'pci', 'eu-west.1_a']);
    const byHost = await root('PUT', '/api/v1/endpoints/DB-2/tags', { tags: ['prod'] });
    assert.equal(byHost.status, 200, JSON.stringify(byHost.body));
    const all = await listed(alice);
    assert.deepEqual(all.find((e) => e.id === endpoints['db-1'])!.tags, ['prod', 'pci', 'eu-west.1_a']);
    assert.deepEqual(all.find((e) => e.id === endpoints['db-2'])!.tags, ['prod']);
    assert.deepEqual(all.find((e) => e.id === endpoints['ws-1'])!.tags, [], 'untagged: an empty list');
    const events = await stack.server!.ctx.c.audit.find({ type: 'endpoint.tags-changed', endpointId: endpoints['db-1'] }).toArray();
    assert.equal(events.length, 1);
    assert.equal(events[0]!.actor, 'user:root@corp.example');
    assert.deepEqual(events[0]!.detail, { hostname: 'db-1', tags: ['prod', 'pci', 'eu-west.1_a'], previous: [] });
    const cleared = await root('PUT', `/api/v1/endpoints/${endpoints['db-1']}/tags`, { tags: [] });
    assert.deepEqual(cleared.body.tags, []);
    assert.equal(await tagsOf(endpoints['db-1']!), undefined);
  });

  it('refuses a bad tag or list per field, storing and auditing nothing; an unknown endpoint is 404', async () => {
    await root('PUT', `/api/v1/endpoints/${endpoints['db-1']}/tags`, { tags: ['prod'] });
    const audited = await stack.server!.ctx.c.audit.countDocuments({ type: 'endpoint.tags-changed' });
    const cases: [unknown, string, RegExp][] = [
      [{ tags: ['ok', 'has space'] }, 'tags.1', /1–40 characters/],
      [{ tags: [''] }, 'tags.0', /1–40 characters/],
      [{ tags: ['x'.repeat(41)] }, 'tags.0', /1–40 characters/],
      [{ tags: ['café'] }, 'tags.0', /1–40 characters/],
      // validate() words every wrong type as "is required" (zod 4 issues carry no input): the field is what counts.
      [{ tags: ['prod', 7] }, 'tags.1', /a tag is a string|is required/],
      [{ tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, 'tags', /at most 20 tags/],
      [{ tags: 'prod' }, 'tags', /a list of tags|is required/],
      [{}, 'tags', /required|list of tags/],
      [{ tags: ['prod'], colour: 'red' }, 'colour', /unknown field/],
    ];
    for (const [body, field, why] of cases) {
      const res = await root('PUT', `/api/v1/endpoints/${endpoints['db-1']}/tags`, body);
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      const hit = res.body.error.fields?.find((f: { field: string }) => f.field === field);
      assert.ok(hit, `${field}: ${JSON.stringify(res.body)}`);
      assert.match(hit.message, why);
    }
    assert.deepEqual(await tagsOf(endpoints['db-1']!), ['prod'], 'nothing stored');
    assert.equal(await stack.server!.ctx.c.audit.countDocuments({ type: 'endpoint.tags-changed' }), audited, 'nothing audited');
    const unknown = await root('PUT', '/api/v1/endpoints/no-such-host/tags', { tags: ['prod'] });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.id, 'endpoint.not_found');
  });

  it('admins only: an operator, an approver and a requester get 403', async () => {
    for (const email of ['olga@corp.example', 'ann@corp.example', 'alice@corp.example']) {
      const res = await as(email)('PUT', `/api/v1/endpoints/${endpoints['db-1']}/tags`, { tags: ['prod'] });
      assert.equal(res.status, 403, email);
      assert.equal(res.body.error.id, 'auth.forbidden');
    }
    assert.equal(await tagsOf(endpoints['db-1']!), undefined);
  });

  it('rules decide by tag: the endpoint needs one of the rule\'s tags, in any letter case', async () => {
    await root('PUT', `/api/v1/endpoints/${endpoints['db-1']}/tags`, { tags: ['prod', 'pci'] });
    await root('PUT', `/api/v1/endpoints/${endpoints['ws-1']}/tags`, { tags: ['kiosk'] });
    const rules = await root('PUT', '/api/v1/request-rules', {
      rules: [
        { name: 'no prod', tags: ['PROD', 'finance'], action: 'deny' },
        { name: 'kiosks at once', tags: ['Kiosk'], action: 'auto-approve' },
      ],
    });
    assert.equal(rules.status, 200, JSON.stringify(rules.body));
    const bad = await root('PUT', '/api/v1/request-rules', { rules: [{ name: 'x', tags: ['no spaces allowed'], action: 'deny' }] });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body.error.fields), /rules\.0\.tags\.0/);
    const ask = (endpoint: string) => alice('POST', '/api/v1/requests', { endpoint, operation: 'temporary-access', group: 'Users', minutes: 30, reason: 'look at the database logs' });
    const denied = (await ask('db-1')).body;
    assert.equal(denied.state, 'denied');
    assert.equal(denied.rule.name, 'no prod');
    assert.equal(denied.note, 'denied by the rule "no prod"');
    const untagged = (await ask('db-2')).body;
    assert.equal(untagged.state, 'pending', 'db-2 has no tags: no tags condition matches');
    assert.equal(untagged.rule.name, 'default');
    const kiosk = (await ask('ws-1')).body;
    assert.equal(kiosk.rule.name, 'kiosks at once');
    assert.equal(kiosk.state, 'approved');
    // Tags changed later change later decisions.
    await root('PUT', `/api/v1/endpoints/${endpoints['db-2']}/tags`, { tags: ['finance'] });
    await alice('POST', `/api/v1/requests/${untagged.id}/cancel`);
    assert.equal((await ask('db-2')).body.rule.name, 'no prod');
  });

  it('keeps the tags when the same machine enrolls again', async () => {
    await root('PUT', `/api/v1/endpoints/${endpoints['ws-1']}/tags`, { tags: ['kiosk', 'lobby'] });
    const again = await enroll('ws-1', '2'.repeat(64));
    assert.equal(again, endpoints['ws-1'], 'the same endpoint');
    assert.equal((await stack.server!.ctx.c.audit.countDocuments({ type: 'endpoint.re-enrolled', endpointId: again })), 1);
    assert.deepEqual(await tagsOf(again), ['kiosk', 'lobby']);
    assert.deepEqual((await listed()).find((e) => e.id === again)!.tags, ['kiosk', 'lobby']);
  });
});
