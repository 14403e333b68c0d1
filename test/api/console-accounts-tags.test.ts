import assert from 'node:assert/strict';
import type { Role } from '../../server/store/collections.ts';
import { createUser } from '../../server/web/users.ts';
import { startStack, type Stack } from '../support/stack.ts';
import { ConsoleClient, fieldErrors } from './consoleClient.ts';

const PASSWORD = 'correct horse battery staple 1';

/**
 * The console without JavaScript: Request access lists only the endpoints the rules would not
 * deny (and says which are left out), offers "my own account" or "a temporary account", and
 * names the admin's mapping; the Users page sets a person's accounts per OS and the Endpoints
 * page an endpoint's tags, through the API's schemas and commands (errors per field, nothing
 * stored), for admins only.
 */
describe('console: account mappings, endpoint tags, the Request access list', function () {
  this.timeout(120_000);
  let stack: Stack;
  const web: Record<string, ConsoleClient> = {};
  const ids: Record<string, string> = {};
  const endpoints: Record<string, string> = {};

  before(async () => {
    stack = await startStack({ requests: { expireAfterMinutes: 60, reasonRequired: true, reasonMinLength: 10, maxMinutes: 240, groups: ['Administrators', 'Users'] } });
    for (const [hostname, os, capable] of [['dev-1', 'linux', true], ['lab-1', 'linux', true], ['prod-1', 'linux', true], ['old-1', 'linux', false], ['win-1', 'windows', false]] as const) {
      const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
      const enrolled = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os, agentVersion: 't' });
      endpoints[hostname] = enrolled.body.endpointId;
      if (!capable) continue;
      const accounts = ['alice', 'asmith'].map((name, i) => ({ name, id: String(1000 + i), system: false, admin: false, managed: false }));
      await stack.api.request('PUT', '/agent/v1/inventory', { accounts, capabilities: ['elevate-account'] }, { authorization: `Bearer ${enrolled.body.credential}` });
    }
    const people: [string, Role][] = [['alice@corp.example', 'requester'], ['ann@corp.example', 'approver'], ['root@corp.example', 'admin']];
    for (const [email, role] of people) {
      ids[email] = (await createUser(stack.server!.ctx, { email, role, password: PASSWORD }, 'test'))._id;
      web[email] = new ConsoleClient(stack.api.url);
      assert.equal((await web[email]!.login(email, PASSWORD)).status, 303);
    }
  });
  after(() => stack?.stop());
  beforeEach(async () => {
    const { c } = stack.server!.ctx;
    await c.requests.deleteMany({});
    await c.requestRules.deleteMany({});
    await c.endpoints.updateMany({}, { $unset: { tags: '' } });
    await c.users.updateMany({}, { $unset: { accounts: '' } });
  });

  const alice = () => web['alice@corp.example']!;
  const root = () => web['root@corp.example']!;
  const ann = () => web['ann@corp.example']!;
  const rules = async (list: unknown[]) => assert.equal((await stack.api.request('PUT', '/api/v1/request-rules', { rules: list })).status, 200);
  const tag = async (hostname: string, tags: string[]) => assert.equal((await stack.api.request('PUT', `/api/v1/endpoints/${endpoints[hostname]}/tags`, { tags })).status, 200);
  /** The endpoint options of the Request access page: hostname → its attributes. */
  const options = (html: string) => Object.fromEntries([...html.matchAll(/<option value="([^"]+)"([^>]*)>([^<]*)<\/option>/g)].map((m) => [/^[^ ]+/.exec(m[3]!)![0], { id: m[1], attrs: m[2]!, hidden: / hidden\b/.test(m[2]!), disabled: / disabled\b/.test(m[2]!), text: m[3] }]));
  const note = (html: string) => /<p class="muted" id="offer-note"[^>]*>([^<]*)<\/p>/.exec(html)?.[1]?.replace(/&quot;/g, '"');
  const form = (extra: Record<string, string> = {}) => ({ endpoint: endpoints['dev-1']!, group: 'Users', minutes: '30', reason: 'read the system logs', ...extra });

  it('Request access lists only the endpoints the rules would not deny (by tag, group, duration), and says which it leaves out', async () => {
    await tag('prod-1', ['prod']);
    await rules([
      { name: 'no prod', tags: ['PROD'], action: 'deny' },
      { name: 'no admin on dev', hostnames: ['dev-*'], groups: ['Administrators'], action: 'deny' },
      { name: 'short is fine', maxMinutes: 60, action: 'require-approval' },
      { name: 'no long lab', hostnames: ['lab-*'], action: 'deny' },
    ]);
    const page = await alice().get('/requests/new');
    assert.equal(page.status, 200);
    const o = options(page.text);
    assert.deepEqual(Object.keys(o).sort(), ['dev-1', 'lab-1', 'old-1', 'prod-1', 'win-1']);
    assert.ok(o['prod-1']!.hidden && o['prod-1']!.disabled, 'prod: denied for every group');
    assert.match(o['prod-1']!.attrs, /data-denied="no prod"/);
    for (const h of ['dev-1', 'lab-1']) assert.ok(!o[h]!.hidden && !o[h]!.disabled, `${h} offered: ${o[h]!.attrs}`);
    assert.ok(!o['win-1']!.hidden, 'win-1 offered (its agent cannot elevate: not choosable for an elevation)');
    assert.ok(!o['old-1']!.hidden && o['old-1']!.disabled, 'offered, not choosable: its agent cannot elevate');
    assert.match(o['old-1']!.text!, /its agent cannot elevate accounts yet/);
    assert.equal(note(page.text), 'Listed: the endpoints where the rules would not deny at once a request of yours for some group, 60 minutes, now. Not listed: prod-1 (the rule "no prod").');
    // A group and a duration chosen: the list follows them (the page's script asks this as they change).
    const offer = async (q: string) => Object.fromEntries(JSON.parse((await alice().get(`/requests/offer?${q}`)).text).endpoints.map((e: { hostname: string; deniedBy: string | null }) => [e.hostname, e.deniedBy]));
    assert.deepEqual(await offer('group=Administrators&minutes=30'), { 'dev-1': 'no admin on dev', 'lab-1': null, 'old-1': null, 'prod-1': 'no prod', 'win-1': null });
    assert.deepEqual(await offer('group=Users&minutes=120'), { 'dev-1': null, 'lab-1': 'no long lab', 'old-1': null, 'prod-1': 'no prod', 'win-1': null });
    const json = JSON.parse((await alice().get('/requests/offer?group=Users&minutes=120')).text);
    assert.deepEqual([json.group, json.minutes], ['Users', 120]);
    assert.match(json.note, /for Users, 120 minutes, now\. Not listed: lab-1 \(the rule "no long lab"\), prod-1 \(the rule "no prod"\)\.$/);
    // The form re-shown with a group: the same list, server-side; the chosen endpoint stays even when denied.
    const reshown = await alice().get(`/requests/new?endpoint=${endpoints['dev-1']}&group=Administrators`);
    const r = options(reshown.text);
    assert.ok(!r['dev-1']!.hidden && !r['dev-1']!.disabled && / selected\b/.test(r['dev-1']!.attrs), 'the chosen one stays');
    assert.match(r['dev-1']!.attrs, /data-denied="no admin on dev"/);
    assert.match(reshown.text, /the rule &quot;no admin on dev&quot;: denied at once/, 'and the preview says why');
    // The preview follows tags too.
    const preview = JSON.parse((await alice().get(`/requests/preview?endpoint=prod-1&group=Users&minutes=30`)).text);
    assert.deepEqual([preview.action, preview.rule], ['deny', 'no prod']);
  });

  it('offers "my own account" (the admin\'s mapping) or "a temporary account mailed to me"; the form files either', async () => {
    assert.equal((await stack.api.request('PUT', `/api/v1/users/alice@corp.example/accounts`, { linux: 'asmith', windows: 'CORP\\alice' })).status, 200);
    const page = await alice().get(`/requests/new?endpoint=${endpoints['dev-1']}`);
    assert.match(page.text, /<input type="radio" id="operation-elevate" name="operation" value="elevate-account" checked>/);
    assert.match(page.text, /<input type="radio" id="operation-temporary" name="operation" value="temporary-access" >/);
    assert.match(page.text, /<strong id="account">asmith<\/strong> \(set for you by an admin\)/);
    const o = options(page.text);
    assert.match(o['win-1']!.attrs, /data-account="CORP\\alice"/);
    assert.match(o['dev-1']!.attrs, /data-account="asmith"/);
    // Temporary access: no account shown; an agent that cannot elevate is fine for it.
    const temp = await alice().get(`/requests/new?operation=temporary-access&endpoint=${endpoints['old-1']}`);
    assert.match(temp.text, /<span class="muted" id="account-line" hidden>/);
    assert.match(temp.text, /id="operation-temporary" name="operation" value="temporary-access" checked/);
    assert.ok(!options(temp.text)['old-1']!.disabled, 'old-1 is choosable for a temporary account');

    const elevate = await alice().post('/requests/new', form(), '/requests/new');
    assert.equal(elevate.status, 303, elevate.text.slice(0, 300));
    const temporary = await alice().post('/requests/new', form({ operation: 'temporary-access', endpoint: endpoints['old-1']! }), '/requests/new');
    assert.equal(temporary.status, 303, temporary.text.slice(0, 300));
    const stored = await stack.server!.ctx.c.requests.find().sort({ createdAt: 1 }).toArray();
    assert.deepEqual(stored.map((r) => [r.hostname, r.operation, r.account ?? null]), [['dev-1', 'elevate-account', 'asmith'], ['old-1', 'temporary-access', null]]);
    const bad = await alice().post('/requests/new', form({ operation: 'root-shell', group: 'Administrators' }), '/requests/new');
    assert.equal(bad.status, 400);
    assert.match(fieldErrors(bad.text).operation!, /must be one of temporary-access, elevate-account/);
    assert.equal(await stack.server!.ctx.c.requests.countDocuments(), 2, 'nothing more stored');
  });

  it('the Users page sets a person\'s own account per OS: saved and audited, or errors per field with the typed values kept and nothing stored', async () => {
    const aliceId = ids['alice@corp.example']!;
    const users = await root().get('/users');
    assert.match(users.text, new RegExp(`<input id="acc-linux-${aliceId}" name="linux" value="" placeholder="alice"`));
    const saved = await root().post(`/users/${aliceId}/accounts`, { linux: 'asmith', macos: '', windows: 'CORP\\alice' }, '/users');
    assert.equal(saved.status, 200);
    assert.match(saved.text, /alice@corp\.example&#x27;s requests elevate their own account: Linux asmith, macOS alice, Windows CORP\\alice\./);
    assert.match(saved.text, new RegExp(`<input id="acc-linux-${aliceId}" name="linux" value="asmith"`));
    assert.deepEqual((await stack.server!.ctx.c.users.findOne({ _id: aliceId }))!.accounts, { linux: 'asmith', windows: 'CORP\\alice' });
    assert.equal(await stack.server!.ctx.c.audit.countDocuments({ type: 'user.accounts-changed', actor: 'user:root@corp.example' }), 1);
    const refused = await root().post(`/users/${aliceId}/accounts`, { linux: 'root', macos: 'ok.name', windows: 'a/b' }, '/users');
    assert.equal(refused.status, 400);
    const errors = fieldErrors(refused.text);
    assert.deepEqual(Object.keys(errors).sort(), ['linux', 'windows'], JSON.stringify(errors));
    assert.match(errors.linux!, /system account/);
    assert.match(errors.windows!, /not an account name Windows has/);
    assert.match(refused.text, new RegExp(`<input id="acc-windows-${aliceId}" name="windows" value="a/b"`), 'what was typed is kept');
    assert.deepEqual((await stack.server!.ctx.c.users.findOne({ _id: aliceId }))!.accounts, { linux: 'asmith', windows: 'CORP\\alice' }, 'nothing stored');
    const approver = await ann().post(`/users/${aliceId}/accounts`, { linux: 'x' }, '/requests');
    assert.equal(approver.status, 403);
  });

  it('the Endpoints page sets an endpoint\'s tags (admins); others see them as text', async () => {
    const id = endpoints['lab-1']!;
    const saved = await root().post(`/endpoints/${id}/tags`, { tags: 'Lab, eu-west  lab' }, '/endpoints');
    assert.equal(saved.status, 200);
    assert.match(saved.text, /lab-1: tagged lab, eu-west\./);
    assert.match(saved.text, new RegExp(`<input id="tags-${id}" name="tags" value="lab, eu-west"`));
    assert.deepEqual((await stack.server!.ctx.c.endpoints.findOne({ _id: id }))!.tags, ['lab', 'eu-west']);
    const refused = await root().post(`/endpoints/${id}/tags`, { tags: 'ok, no$dollars' }, '/endpoints');
    assert.equal(refused.status, 400);
    assert.match(fieldErrors(refused.text).tags!, /&quot;no\$dollars&quot;: a tag is 1–40 characters/);
    assert.match(refused.text, new RegExp(`<input id="tags-${id}" name="tags" value="ok, no\\$dollars"`));
    assert.deepEqual((await stack.server!.ctx.c.endpoints.findOne({ _id: id }))!.tags, ['lab', 'eu-west'], 'nothing stored');
    const seen = await ann().get('/endpoints');
    assert.match(seen.text, new RegExp(`<tr data-endpoint-id="${id}">[\\s\\S]*?<td class="tags"><code>lab</code> <code>eu-west</code></td>`));
    assert.doesNotMatch(seen.text, /Save tags/);
    assert.equal((await ann().post(`/endpoints/${id}/tags`, { tags: 'x' }, '/endpoints')).status, 403);
  });

  it('an approver approves from the console with a later start: the grant starts then, for the minutes given; a bad start is refused on the form', async () => {
    const filed = await alice().post('/requests/new', form(), '/requests/new');
    assert.equal(filed.status, 303, filed.text.slice(0, 300));
    const id = /\/requests\/([0-9a-f-]{36})/.exec(filed.location ?? '')![1]!;
    const bad = await ann().post(`/requests/${id}/approve`, { minutes: '10', start: 'tomorrow-ish' }, `/requests/${id}`);
    assert.equal(bad.status, 400);
    assert.match(fieldErrors(bad.text).start!, /date and time/);
    const past = await ann().post(`/requests/${id}/approve`, { minutes: '10', start: new Date(Date.now() - 3_600_000).toISOString().slice(0, 19) }, `/requests/${id}`);
    assert.equal(past.status, 400);
    assert.match(fieldErrors(past.text).start!, /past/);
    assert.equal((await stack.server!.ctx.c.requests.findOne({ _id: id }))!.state, 'pending', 'nothing decided');
    const at = new Date(Math.ceil((Date.now() + 2 * 3_600_000) / 1000) * 1000);
    const ok = await ann().post(`/requests/${id}/approve`, { minutes: '10', start: at.toISOString().slice(0, 19) }, `/requests/${id}`);
    assert.equal(ok.status, 303);
    const r = (await stack.server!.ctx.c.requests.findOne({ _id: id }))!;
    assert.equal(r.state, 'approved');
    assert.equal(r.grantStartAt!.getTime(), at.getTime());
    assert.equal(r.grantEndAt!.getTime() - at.getTime(), 10 * 60_000);
  });
});
