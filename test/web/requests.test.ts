/**
 * The console's access-request pages in a real browser (Debian's Chromium, driven by
 * playwright-core) against the real server and FerretDB: a requester asks, an approver decides
 * from the queue, an admin edits the rules. The endpoints are enrolled through the agent API with
 * the inventory an agent reports at start (no agent runs: an approval's grant stays ahead of it).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { fileRequest } from '../../server/commands/requests.ts';
import type { Role } from '../../server/store/collections.ts';
import { createUser } from '../../server/web/users.ts';
import { startStack, type Stack } from '../support/stack.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const SHOTS = path.join(REPO, 'docs/screenshots');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const PASSWORD = 'correct horse battery staple 1';
const ALICE = 'alice@corp.example';
const ANN = 'ann@corp.example';
const ADMIN = 'root@corp.example';

describe('access requests in the console (browser)', function () {
  this.timeout(120_000);
  let stack: Stack;
  let profile: string;
  let browser: BrowserContext;
  let page: Page;
  let url: string;
  const endpointIds: Record<string, string> = {};
  /** Request ids, as the tests make them. */
  const ids: Record<string, string> = {};

  before(async () => {
    stack = await startStack({ requests: { expireAfterMinutes: 600, reasonRequired: true, reasonMinLength: 10, maxMinutes: 240, groups: ['Administrators', 'Power Users', 'Users'] } });
    url = stack.server!.url;
    for (const [hostname, capable] of [['dev-box-1', true], ['old-box-1', false]] as const) {
      const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
      const enrolled = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os: 'linux', agentVersion: 't' });
      endpointIds[hostname] = enrolled.body.endpointId;
      if (!capable) continue;
      const accounts = ['alice', 'ann'].map((name, i) => ({ name, id: String(1000 + i), system: false, admin: false, managed: false }));
      const put = await stack.api.request('PUT', '/agent/v1/inventory', { accounts, capabilities: ['elevate-account'] }, { authorization: `Bearer ${enrolled.body.credential}` });
      assert.equal(put.status, 204, JSON.stringify(put.body));
    }
    assert.ok(endpointIds['dev-box-1'], 'enrolled');
    const people: [string, Role][] = [[ALICE, 'requester'], [ANN, 'approver'], [ADMIN, 'admin']];
    for (const [email, role] of people) await createUser(stack.server!.ctx, { email, role, password: PASSWORD }, 'test');
    await mkdir(SHOTS, { recursive: true });
    profile = await mkdtemp(path.join(os.tmpdir(), 'jit-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', args: ARGS, headless: true, viewport: { width: 1280, height: 900 }, timezoneId: 'UTC' });
    page = browser.pages()[0] ?? (await browser.newPage());
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  async function login(email: string) {
    if (await page.locator('button', { hasText: 'Sign out' }).count()) await page.locator('button', { hasText: 'Sign out' }).click();
    await page.goto(`${url}/login`);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((u) => !u.pathname.startsWith('/login'));
  }
  const nav = () => page.locator('header nav a').allInnerTexts();
  const csrf = () => page.locator('input[name=_csrf]').first().inputValue();
  const errorId = () => page.locator('[data-error-id]').getAttribute('data-error-id');
  const row = (id: string) => page.locator(`tr[data-request-id="${id}"]`);
  const db = () => stack.server!.ctx.c;

  it('a requester lands on My requests, sees only their nav entries and no other page', async () => {
    await login(ALICE);
    assert.equal(new URL(page.url()).pathname + new URL(page.url()).search, '/requests?mine=true');
    assert.equal(await page.locator('h1').innerText(), 'My requests');
    assert.deepEqual(await nav(), ['Request access', 'My requests']);
    for (const p of ['/grants', '/endpoints', '/audit', '/settings', '/request-rules', '/account', '/grants/new']) {
      const res = await page.goto(`${url}${p}`);
      assert.equal(res!.status(), 403, p);
      assert.equal(await errorId(), 'auth.forbidden', p);
      assert.deepEqual(await nav(), ['Request access', 'My requests'], `the error page's nav (${p})`);
    }
    // The queue's view is hers only, whatever the query asks for.
    await page.goto(`${url}/requests?mine=false&state=pending`);
    assert.equal(await page.locator('h1').innerText(), 'My requests');
    // A decision is not hers to make, even by a direct post.
    const post = await page.request.post(`${url}/requests/x/approve`, { form: { _csrf: await csrf() } });
    assert.equal(post.status(), 403);
  });

  it('files a request on the Request access page: the preview says an approver decides, errors per field, then pending in My requests', async () => {
    await page.goto(`${url}/requests/new`);
    // An endpoint whose agent cannot elevate is offered but not choosable; Linux has no Power Users.
    assert.equal(await page.locator(`#endpoint option[value="${endpointIds['old-box-1']}"]`).isDisabled(), true);
    await page.getByLabel('Filter by hostname or OS').fill('dev');
    await page.locator('#endpoint').selectOption(endpointIds['dev-box-1']!);
    assert.equal(await page.locator('#account').innerText(), 'alice');
    assert.equal(await page.getByLabel('Power Users').isDisabled(), true);
    assert.match(await page.locator('#reason-1').innerText(), /Linux endpoints have no "Power Users" group/);
    assert.equal(await page.getByLabel('Duration in minutes').inputValue(), '60', 'the default duration');
    await page.getByLabel('Administrators').check();
    await page.getByLabel('Duration in minutes').fill('120');
    await page.locator('#preview', { hasText: 'an approver decides' }).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#preview').getAttribute('data-action'), 'require-approval');
    await page.getByLabel('Reason').fill('install the printer driver');
    await page.screenshot({ path: path.join(SHOTS, 'requests-new.png'), fullPage: true });
    // Too short a reason and a duration over the maximum: both said, the values kept, nothing stored.
    await page.getByLabel('Duration in minutes').fill('500');
    await page.getByLabel('Reason').fill('printer');
    await page.getByRole('button', { name: 'Send request' }).click();
    await page.locator('#form-errors').waitFor();
    const errors = Object.fromEntries(await page.locator('.field-error').evaluateAll((els) => els.map((e) => [(e as HTMLElement).dataset.field, e.textContent])));
    assert.deepEqual(Object.keys(errors).sort(), ['minutes', 'reason'], JSON.stringify(errors));
    assert.match(errors.reason!, /at least 10 characters/);
    assert.match(errors.minutes!, /at most 240 minutes/);
    assert.equal(await page.getByLabel('Reason').inputValue(), 'printer');
    assert.equal(await page.getByLabel('Administrators').isChecked(), true);
    assert.equal(await db().requests.countDocuments(), 0, 'nothing stored');
    await page.getByLabel('Duration in minutes').fill('120');
    await page.getByLabel('Reason').fill('install the printer driver');
    await page.locator('#preview', { hasText: 'an approver decides' }).waitFor({ timeout: 5000 });
    await page.getByRole('button', { name: 'Send request' }).click();
    await page.waitForURL(/\/requests\/[0-9a-f-]+\?done=filed$/);
    ids.first = /\/requests\/([0-9a-f-]+)/.exec(page.url())![1]!;
    assert.equal(await page.locator('#state').innerText(), 'pending');
    assert.deepEqual(await page.locator('#events li').evaluateAll((ls) => ls.map((l) => (l as HTMLElement).dataset.type)), ['request.created']);
    await page.goto(`${url}/requests?mine=true`);
    const r = row(ids.first);
    assert.equal(await r.getAttribute('data-state'), 'pending');
    assert.match(await r.innerText(), /dev-box-1\s+Administrators\s+120\s+install the printer driver\s+default/);
    assert.equal(await r.locator('button', { hasText: 'Cancel' }).count(), 1, 'she may cancel her pending request');
    assert.equal(await r.locator('button', { hasText: 'Approve' }).count(), 0);
    // The same again is refused on the form, which keeps the values.
    await page.goto(`${url}/requests/new?endpoint=${endpointIds['dev-box-1']}&group=Administrators`);
    await page.getByLabel('Reason').fill('install the printer driver');
    await page.getByRole('button', { name: 'Send request' }).click();
    assert.match(await page.locator('#form-errors').innerText(), /already have an open request/);
    assert.equal(await db().requests.countDocuments(), 1);
  });

  it('the requester cancels a pending request', async () => {
    const filed = await fileRequest(stack.server!.ctx, { endpoint: 'dev-box-1', operation: 'elevate-account', group: 'Users', minutes: 30, reason: 'reading the system logs' }, { actor: `user:${ALICE}`, email: ALICE, role: 'requester' });
    await page.goto(`${url}/requests?mine=true`);
    await row(filed._id).locator('button', { hasText: 'Cancel' }).click();
    await page.waitForURL(`${url}/requests/${filed._id}?done=cancelled`);
    assert.equal(await page.locator('#state').innerText(), 'cancelled');
    assert.equal((await db().requests.findOne({ _id: filed._id }))!.state, 'cancelled');
  });

  it('an approver sees the pending count on the dashboard and approves from the queue with a shorter duration', async () => {
    // Ann's own request: in the queue, without buttons for her; refused by a direct post.
    const own = await fileRequest(stack.server!.ctx, { endpoint: 'dev-box-1', operation: 'elevate-account', group: 'Administrators', minutes: 60, reason: 'my own elevation please' }, { actor: `user:${ANN}`, email: ANN, role: 'approver' });
    ids.annOwn = own._id;
    await login(ANN);
    assert.equal(new URL(page.url()).pathname, '/');
    assert.deepEqual(await nav(), ['Dashboard', 'Grants', 'Endpoints', 'Agent Settings', 'Audit log', 'Request access', 'My requests', 'Approvals']);
    assert.equal(await page.locator('#pending-count').innerText(), '2');
    await page.locator('#pending-requests').click();
    await page.waitForURL(/\/requests\?state=pending$/);
    assert.equal(await page.locator('h1').innerText(), 'Approvals');
    assert.deepEqual(await page.locator('tr[data-request-id]').evaluateAll((rs) => rs.map((r) => (r as HTMLElement).dataset.state)), ['pending', 'pending'], 'the cancelled one is filtered out');
    assert.equal(await row(own._id).locator('button', { hasText: 'Approve' }).count(), 0, 'never one’s own');
    const self = await page.request.post(`${url}/requests/${own._id}/approve`, { form: { _csrf: await csrf() } });
    assert.equal(self.status(), 403);
    assert.match(await self.text(), /request\.self_approval/);
    // Filters: by requester and by endpoint.
    await page.getByLabel('Requester', { exact: true }).fill('alice');
    await page.getByRole('button', { name: 'Filter' }).click();
    assert.deepEqual(await page.locator('tr[data-request-id]').evaluateAll((rs) => rs.map((r) => (r as HTMLElement).dataset.requestId)), [ids.first]);
    await page.goto(`${url}/requests?state=&endpoint=old-box`);
    assert.equal(await page.locator('tr[data-request-id]').count(), 0);
    await page.goto(`${url}/requests?state=cancelled`);
    assert.equal(await page.locator('tr[data-request-id]').count(), 1);
    await page.goto(`${url}/requests`);
    const r = row(ids.first!);
    assert.match(await r.innerText(), new RegExp(`${ALICE.replace('.', '\\.')}`));
    assert.equal(await page.locator(`#approve-minutes-${ids.first}`).inputValue(), '120', 'the requested minutes by default');
    await page.screenshot({ path: path.join(SHOTS, 'approvals.png'), fullPage: true });
    // Longer than asked: refused, said on the request's page, still pending.
    await page.locator(`#approve-minutes-${ids.first}`).fill('180');
    await page.locator(`#approve-${ids.first}`).click();
    assert.match(await page.locator('.field-error[data-field=minutes]').innerText(), /shorten the access, not lengthen it/);
    assert.equal(await page.locator('#state').innerText(), 'pending');
    await page.goto(`${url}/requests`);
    await page.locator(`#approve-minutes-${ids.first}`).fill('30');
    await page.locator(`#approve-note-${ids.first}`).fill('half an hour is enough');
    await page.locator(`#approve-${ids.first}`).click();
    await page.waitForURL(`${url}/requests/${ids.first}?done=approved`);
    assert.equal(await page.locator('#state').innerText(), 'approved');
    assert.equal(await page.locator('#decided-by').innerText().then((t) => t.split(',')[0]), `user:${ANN}`);
    const stored = (await db().requests.findOne({ _id: ids.first }))!;
    const grant = (await db().grants.findOne({ _id: stored.grantId! }))!;
    assert.equal((grant.endAt.getTime() - grant.startAt.getTime()) / 60_000, 30);
    assert.equal(grant.account, 'alice');
    assert.equal(await page.locator('#grant a').getAttribute('href'), `/grants/${grant._id}`, 'a reader gets the grant’s page');
    assert.deepEqual(await page.locator('#events li').evaluateAll((ls) => ls.map((l) => (l as HTMLElement).dataset.type)), ['request.created', 'request.approved']);
  });

  it('the approver denies a second request: the note is required, and the requester sees it', async () => {
    const filed = await fileRequest(stack.server!.ctx, { endpoint: 'dev-box-1', operation: 'elevate-account', group: 'Users', minutes: 240, reason: 'a whole afternoon of it' }, { actor: `user:${ALICE}`, email: ALICE, role: 'requester' });
    ids.denied = filed._id;
    await page.goto(`${url}/requests`);
    await page.locator(`#deny-${filed._id}`).click();
    assert.match(await page.locator('.field-error[data-field=deny-note]').innerText(), /say why/);
    assert.equal((await db().requests.findOne({ _id: filed._id }))!.state, 'pending');
    await page.locator(`#deny-note-${filed._id}`).fill('not on a Friday afternoon');
    await page.locator(`#deny-${filed._id}`).click();
    await page.waitForURL(`${url}/requests/${filed._id}?done=denied`);
    assert.equal(await page.locator('#state').innerText(), 'denied');
    // Decided is decided: a second decision is the console's 409 page.
    const again = await page.request.post(`${url}/requests/${filed._id}/approve`, { form: { _csrf: await csrf() } });
    assert.equal(again.status(), 409);
  });

  it('the requester sees the approval with the grant’s live state, and the denial with its note', async () => {
    await login(ALICE);
    const approved = row(ids.first!);
    assert.equal(await approved.getAttribute('data-state'), 'approved');
    const grant = (await db().grants.findOne({ accessRequestId: ids.first }))!;
    assert.equal(await approved.locator('td.grant').innerText(), grant.state);
    assert.equal(await approved.locator('td.grant a').count(), 0, 'the grant’s page is not hers');
    assert.match(await approved.innerText(), /user:ann@corp\.example\s+half an hour is enough/);
    const denied = row(ids.denied!);
    assert.equal(await denied.getAttribute('data-state'), 'denied');
    assert.equal(await denied.locator('td.note').innerText(), 'not on a Friday afternoon');
    await page.goto(`${url}/requests/${ids.denied}`);
    assert.equal(await page.locator('#note').innerText(), 'not on a Friday afternoon');
    assert.equal(await page.locator('form[action$="/deny"]').count(), 0);
    // Another's request does not exist for her.
    const other = await page.goto(`${url}/requests/${ids.annOwn}`);
    assert.equal(other!.status(), 404);
    assert.equal(await errorId(), 'request.not_found');
    await page.goto(`${url}/requests?mine=true`);
    assert.equal(await row(ids.annOwn!).count(), 0);
  });

  it('an admin edits the rules: bad JSON and a bad rule are shown and save nothing; a good list is saved, versioned, and the preview follows it', async () => {
    await login(ADMIN);
    assert.ok((await nav()).includes('Request rules'));
    await page.locator('header nav a', { hasText: 'Request rules' }).click();
    assert.equal(await page.locator('#version').innerText(), '0');
    assert.equal(await page.getByLabel(/^Rules, in order/).inputValue(), '[]');
    await page.getByLabel(/^Rules, in order/).fill('[{"name": "oops",');
    await page.getByRole('button', { name: 'Save rules' }).click();
    assert.match(await page.locator('#err-rules').innerText(), /not valid JSON/);
    assert.equal(await page.getByLabel(/^Rules, in order/).inputValue(), '[{"name": "oops",', 'the text is kept');
    await page.getByLabel(/^Rules, in order/).fill('[{"name": "dev boxes", "hostnames": ["dev-*"], "action": "maybe"}]');
    await page.getByRole('button', { name: 'Save rules' }).click();
    assert.match(await page.locator('#err-rules').innerText(), /rule 1 \(dev boxes\), action:/);
    assert.equal(await db().requestRules.countDocuments(), 0, 'nothing saved');
    assert.equal(await page.locator('#version').innerText(), '0');
    const rules = [{ name: 'dev boxes', hostnames: ['dev-*'], maxMinutes: 60, action: 'auto-approve' }, { name: 'the rest', action: 'require-approval', approvers: [ANN] }];
    await page.getByLabel(/^Rules, in order/).fill(JSON.stringify(rules));
    await page.getByRole('button', { name: 'Save rules' }).click();
    assert.match(await page.locator('#saved').innerText(), /Saved as version 1 \(2 rule\(s\)\)/);
    assert.equal(await page.locator('#version').innerText(), '1');
    assert.deepEqual(JSON.parse(await page.getByLabel(/^Rules, in order/).inputValue()), rules);
    assert.deepEqual((await db().requestRules.findOne({ _id: 'rules' }))!.rules, rules);
    // A form edited from version 0 cannot overwrite version 1.
    const stale = await page.request.post(`${url}/request-rules`, { form: { _csrf: await csrf(), version: '0', rules: '[]' } });
    assert.equal(stale.status(), 409);
    assert.equal((await db().requestRules.findOne({ _id: 'rules' }))!.version, 1);
    // The preview reads the saved rules.
    await page.goto(`${url}/requests/new`);
    await page.locator('#endpoint').selectOption(endpointIds['dev-box-1']!);
    await page.getByLabel('Users', { exact: true }).check();
    await page.getByLabel('Duration in minutes').fill('30');
    await page.locator('#preview', { hasText: 'the rule "dev boxes": approved at once' }).waitFor({ timeout: 5000 });
    await page.getByLabel('Duration in minutes').fill('90');
    await page.locator('#preview', { hasText: `the rule "the rest": one of ${ANN} decides` }).waitFor({ timeout: 5000 });
    // An approver reads the rules but has no save button, and a post is refused.
    await login(ANN);
    await page.goto(`${url}/request-rules`);
    assert.equal(await page.getByRole('button', { name: 'Save rules' }).count(), 0);
    const post = await page.request.post(`${url}/request-rules`, { form: { _csrf: await csrf(), version: '1', rules: '[]' } });
    assert.equal(post.status(), 403);
  });
});
