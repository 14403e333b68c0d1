/**
 * The Request access page's choices in a real browser (Debian's Chromium, driven by
 * playwright-core) against the real server and FerretDB: the account an admin mapped for the
 * person, the endpoint list following the chosen group (a rule denies by endpoint tag), and a new
 * temporary account instead of one's own. The endpoints are enrolled through the agent API with
 * the inventory an agent reports at start (no agent runs).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createUser } from '../../server/web/users.ts';
import { startStack, type Stack } from '../support/stack.ts';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const PASSWORD = 'correct horse battery staple 1';
const ALICE = 'alice@corp.example';

describe('Request access: what you get, and the endpoints the rules would not deny (browser)', function () {
  this.timeout(120_000);
  let stack: Stack;
  let profile: string;
  let browser: BrowserContext;
  let page: Page;
  let url: string;
  const endpointIds: Record<string, string> = {};

  before(async () => {
    stack = await startStack({ requests: { expireAfterMinutes: 600, reasonRequired: true, reasonMinLength: 10, maxMinutes: 240, groups: ['Administrators', 'Power Users', 'Users'] } });
    url = stack.server!.url;
    for (const [hostname, capable] of [['dev-box-1', true], ['old-box-1', false]] as const) {
      const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
      const enrolled = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname, os: 'linux', agentVersion: 't' });
      endpointIds[hostname] = enrolled.body.endpointId;
      if (!capable) continue;
      const accounts = ['alice', 'asmith'].map((name, i) => ({ name, id: String(1000 + i), system: false, admin: false, managed: false }));
      const put = await stack.api.request('PUT', '/agent/v1/inventory', { accounts, capabilities: ['elevate-account'] }, { authorization: `Bearer ${enrolled.body.credential}` });
      assert.equal(put.status, 204, JSON.stringify(put.body));
    }
    await createUser(stack.server!.ctx, { email: ALICE, role: 'requester', password: PASSWORD }, 'test');
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
    await page.goto(`${url}/login`);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((u) => !u.pathname.startsWith('/login'));
  }
  const db = () => stack.server!.ctx.c;

  it('the admin’s account mapping, the list following the group (rules by tag), a temporary account instead', async () => {
    assert.equal((await stack.api.request('PUT', `/api/v1/users/${ALICE}/accounts`, { linux: 'asmith' })).status, 200);
    assert.equal((await stack.api.request('PUT', `/api/v1/endpoints/${endpointIds['old-box-1']}/tags`, { tags: ['legacy'] })).status, 200);
    assert.equal((await stack.api.request('PUT', '/api/v1/request-rules', { rules: [{ name: 'no admin on legacy', tags: ['LEGACY'], groups: ['Administrators'], action: 'deny' }] })).status, 200);
    await login(ALICE);
    await page.goto(`${url}/requests/new`);
    const oldBox = page.locator(`#endpoint option[value="${endpointIds['old-box-1']}"]`);
    const flags = () => oldBox.evaluate((o) => ({ hidden: (o as HTMLOptionElement).hidden, disabled: (o as HTMLOptionElement).disabled, text: o.textContent }));
    assert.equal(await page.getByLabel('Elevate my own account').isChecked(), true, 'elevating one’s own account is the default');
    await page.locator('#endpoint').selectOption(endpointIds['dev-box-1']!);
    assert.equal(await page.locator('#account').innerText(), 'asmith', 'the admin’s mapping, not the email’s local part');
    assert.deepEqual(await flags(), { hidden: false, disabled: true, text: 'old-box-1 — Linux — its agent cannot elevate accounts yet' });
    // A group the rules deny on the legacy endpoint: it leaves the list, and the page says why.
    await page.getByLabel('Administrators').check();
    await page.locator('#offer-note', { hasText: 'Not listed: old-box-1 (the rule "no admin on legacy")' }).waitFor({ timeout: 5000 });
    assert.equal((await flags()).hidden, true);
    await page.getByLabel('Users', { exact: true }).check();
    await page.locator('#offer-note', { hasText: 'for Users, 60 minutes, now. None is left out.' }).waitFor({ timeout: 5000 });
    assert.equal((await flags()).hidden, false);
    // A temporary account: no account shown, and an agent that cannot elevate will do.
    await page.getByLabel('A new temporary account, mailed to me').check();
    assert.equal(await page.locator('#account-line').isHidden(), true);
    assert.deepEqual(await flags(), { hidden: false, disabled: false, text: 'old-box-1 — Linux' });
    await page.locator('#endpoint').selectOption(endpointIds['old-box-1']!);
    await page.getByLabel('Users', { exact: true }).check();
    await page.getByLabel('Reason').fill('look at the old print queue');
    await page.locator('#preview', { hasText: 'an approver decides' }).waitFor({ timeout: 5000 });
    await page.getByRole('button', { name: 'Send request' }).click();
    await page.waitForURL(/\/requests\/[0-9a-f-]+\?done=filed$/);
    const id = /\/requests\/([0-9a-f-]+)/.exec(page.url())![1]!;
    const stored = (await db().requests.findOne({ _id: id }))!;
    assert.deepEqual([stored.operation, stored.account ?? null, stored.hostname, stored.group], ['temporary-access', null, 'old-box-1', 'Users']);
  });
});
