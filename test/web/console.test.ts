/**
 * The admin console in a real browser (Debian's Chromium, driven by
 * playwright-core) against the real server, FerretDB and a real agent.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { run } from '../../agent/os/exec.ts';
import { until } from '../support/accounts.ts';
import { enrollAgent, grantBody, startStack, type AgentProc, type Stack } from '../support/stack.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const SHOTS = path.join(REPO, 'docs/screenshots');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ADMIN = { email: 'admin@example.com', password: 'correct horse battery' };
const AUDITOR = { email: 'auditor@example.com', password: 'auditor password 1' };

/** Runs `npm run create-admin` as an operator would, the password on stdin. */
function createAdmin(stack: Stack, email: string, password: string, role = 'admin'): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'scripts/create-admin.ts', '--email', email, '--role', role], {
      cwd: REPO,
      env: { ...process.env, MONGODB_URI: stack.config.mongodbUri },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.stdin.end(`${password}\n`);
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`create-admin exited ${code}: ${out}`))));
  });
}

/** A UTC wall time for a datetime-local input, `s` seconds from now. */
const utcIn = (s: number) => new Date(Date.now() + s * 1000).toISOString().slice(0, 19);

describe('admin console in a browser', function () {
  this.timeout(120_000);
  let stack: Stack;
  let agent: AgentProc;
  let profile: string;
  let browser: BrowserContext;
  let page: Page;
  let url: string;

  before(async () => {
    stack = await startStack({ leadTimeSeconds: 2 });
    url = stack.server!.url;
    agent = await enrollAgent(stack, 'web-linux-1');
    agent.start();
    await createAdmin(stack, ADMIN.email, ADMIN.password);
    await createAdmin(stack, AUDITOR.email, AUDITOR.password, 'auditor');
    await mkdir(SHOTS, { recursive: true });
    profile = await mkdtemp(path.join(os.tmpdir(), 'jit-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', args: ARGS, headless: true, viewport: { width: 1280, height: 900 }, timezoneId: 'UTC' });
    page = browser.pages()[0] ?? (await browser.newPage());
  });
  after(async () => {
    await browser?.close();
    await agent?.cleanup();
    await stack?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  async function login(who: { email: string; password: string }) {
    await page.goto(`${url}/login`);
    await page.getByLabel('Email').fill(who.email);
    await page.getByLabel('Password').fill(who.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  it('rejects a wrong password, then signs in', async () => {
    await login({ email: ADMIN.email, password: 'wrong password!!' });
    assert.match(await page.locator('#login-error').innerText(), /Wrong email or password/);
    assert.equal(await page.getByLabel('Email').inputValue(), ADMIN.email);
    await login(ADMIN);
    await page.waitForURL(`${url}/`);
    assert.equal(await page.locator('h1').innerText(), 'Dashboard');
  });

  it('locks an account after 5 failed logins, even for the right password', async () => {
    await createAdmin(stack, 'locked@example.com', 'the right password', 'operator');
    const attempt = (password: string) =>
      fetch(`${url}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: 'jit_login_csrf=x' }, body: new URLSearchParams({ _csrf: 'x', email: 'locked@example.com', password }) });
    for (let i = 0; i < 5; i++) assert.equal((await attempt('wrong')).status, i < 4 ? 401 : 429);
    const t0 = Date.now();
    const res = await attempt('the right password');
    assert.equal(res.status, 429);
    assert.match(await res.text(), /locked until/);
    assert.ok(Date.now() - t0 >= 390, 'every answer takes the constant delay');
  });

  it('shows every field error in the wizard and keeps the values', async () => {
    await page.goto(`${url}/grants/new`);
    await page.getByLabel("Account Name (end user's email)").fill('not-an-email');
    await page.getByLabel('Time zone').fill('UTC');
    await page.getByLabel('Access Start').fill('2020-01-01T09:00:00');
    await page.getByLabel('Access End').fill('2019-12-31T09:00:00');
    await page.getByRole('button', { name: 'Review…' }).click();
    await page.locator('#form-errors').waitFor();
    const errors = Object.fromEntries(await page.locator('.field-error').evaluateAll((els) => els.map((e) => [(e as HTMLElement).dataset.field, e.textContent])));
    assert.deepEqual(Object.keys(errors).sort(), ['email', 'end', 'endpoint', 'group', 'start'], JSON.stringify(errors));
    assert.match(errors.email, /valid email/);
    assert.match(errors.start, /in the past/);
    assert.match(errors.end, /after/);
    assert.equal(await page.getByLabel("Account Name (end user's email)").inputValue(), 'not-an-email');
    assert.match(await page.getByLabel('Access Start').inputValue(), /^2020-01-01T09:00(:00)?$/);
    assert.equal(await page.getByLabel("Account Name (end user's email)").getAttribute('aria-invalid'), 'true');
    // Linux has no Power Users: the choice is disabled, with the reason, once the endpoint is chosen.
    await page.locator('#endpoint').selectOption(agent.endpointId);
    assert.equal(await page.getByLabel('Power Users').isDisabled(), true);
    assert.match(await page.locator('#reason-1').innerText(), /Linux endpoints have no "Power Users" group/);
  });

  it('creates a grant through the wizard and follows it live: provisioned → enabled → removed', async () => {
    await page.goto(`${url}/grants/new`);
    await page.getByLabel("Account Name (end user's email)").fill('carol@example.com');
    await page.getByLabel('Filter by hostname or OS').fill('web-linux');
    await page.locator('#endpoint').selectOption(agent.endpointId);
    await page.getByLabel('Administrators').check();
    await page.getByLabel('Time zone').fill('UTC');
    await page.getByRole('button', { name: '+1 h' }).click();
    assert.equal(await page.locator('#duration').innerText(), '1 h 00 min');
    await page.screenshot({ path: path.join(SHOTS, 'wizard.png'), fullPage: true });
    await page.getByLabel('Access Start').fill(utcIn(4));
    await page.getByLabel('Access End').fill(utcIn(9));
    await page.getByRole('button', { name: 'Review…' }).click();
    const summary = await page.locator('.summary').innerText();
    assert.match(summary, /created disabled on web-linux-1/);
    assert.match(summary, /2 s before the access start/);
    await page.screenshot({ path: path.join(SHOTS, 'wizard-summary.png'), fullPage: true });
    await page.getByRole('button', { name: 'Create access' }).click();
    await page.waitForURL(/\/grants\/[0-9a-f-]+\?created=1$/);
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
    const step = (type: string) => page.locator(`#timeline li[data-type="${type}"]`).waitFor({ timeout: 30_000 });
    await step('grant.provisioned');
    await step('grant.enabled');
    assert.equal(await page.locator('#state').innerText(), 'enabled');
    await page.screenshot({ path: path.join(SHOTS, 'grant.png'), fullPage: true });
    await step('grant.removed');
    assert.equal(await page.locator('#state').innerText(), 'removed');
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 1, 'the timeline updated without a reload');
  });

  it('elevates an existing account through the wizard: its fields only with that operation, the endpoint’s accounts offered', async () => {
    await run('useradd', ['--prefix', agent.root, '-u', '2099777', '-m', '-s', '/bin/bash', '--', 'dana']);
    await until(async () => !!(await stack.server!.ctx.c.endpoints.findOne({ _id: agent.endpointId }))?.accounts?.some((a) => a.name === 'dana'), 15_000, 'dana in the inventory');
    await page.goto(`${url}/grants/new`);
    assert.equal(await page.getByLabel('Existing account').isVisible(), false, 'hidden for temporary-access');
    await page.getByLabel('Operation Type').selectOption('elevate-account');
    assert.equal(await page.getByLabel('Existing account').isVisible(), true);
    await page.getByLabel("Account Name (end user's email)").fill('dana@example.com');
    await page.locator('#endpoint').selectOption(agent.endpointId);
    assert.deepEqual(await page.locator('#accounts-list option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), ['dana']);
    await page.getByLabel('Existing account').fill('dana');
    await page.getByLabel('Administrators').check();
    await page.getByLabel('Time zone').fill('UTC');
    await page.getByLabel('Access Start').fill(utcIn(3));
    await page.getByLabel('Access End').fill(utcIn(7));
    await page.getByRole('button', { name: 'Review…' }).click();
    const summary = await page.locator('.summary').innerText();
    assert.match(summary, /dana is put in Administrators/);
    assert.match(summary, /every session of dana logged off/);
    await page.getByRole('button', { name: 'Create access' }).click();
    await page.waitForURL(/\/grants\/[0-9a-f-]+\?created=1$/);
    await page.locator('#timeline li[data-type="grant.enabled"]').waitFor({ timeout: 30_000 });
    const id = /\/grants\/([0-9a-f-]+)/.exec(page.url())![1]!;
    const g = await stack.api.waitGrant(id, (x) => x.state === 'removed', 30_000);
    assert.equal(g.account, 'dana');
    await page.locator('#state', { hasText: /^removed$/ }).waitFor({ timeout: 10_000 });
  });

  it('revokes a grant early behind a confirmation', async () => {
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.hostname, 0, 600));
    const id = res.body.grants[0].id;
    await stack.api.waitGrant(id, (g) => g.state === 'enabled');
    await page.goto(`${url}/grants/${id}`);
    await page.locator('#revoke').click();
    assert.equal(await page.locator('h1').innerText(), 'Revoke now?');
    await page.locator('#confirm').click();
    await page.waitForURL(`${url}/grants/${id}?done=revoked`);
    await page.locator('#state', { hasText: /^revoked$/ }).waitFor({ timeout: 20_000 });
    const g = await stack.api.grant(id);
    assert.equal(g.state, 'revoked');
    assert.ok(g.timeline.some((e: { type: string; actor: string }) => e.type === 'grant.revoking' && e.actor === `user:${ADMIN.email}`), 'the audit names the admin');
  });

  it('lets an auditor read but not create grants, neither from the page nor by a direct POST', async () => {
    await page.locator('button', { hasText: 'Sign out' }).click();
    await login(AUDITOR);
    await page.waitForURL(`${url}/`);
    assert.equal(await page.locator('nav a', { hasText: 'New access' }).count(), 0);
    const res = await page.goto(`${url}/grants/new`);
    assert.equal(res!.status(), 403);
    assert.equal(await page.locator('[data-error-id]').getAttribute('data-error-id'), 'auth.forbidden');
    await page.goto(`${url}/grants`);
    const csrf = await page.locator('input[name=_csrf]').first().inputValue();
    const form = await page.request.post(`${url}/grants/new`, { form: { _csrf: csrf, action: 'create', email: 'x@example.com', endpoint: agent.endpointId, group: 'Users', start: utcIn(60), end: utcIn(120), tz: 'UTC' } });
    assert.equal(form.status(), 403);
    const api = await page.request.post(`${url}/api/v1/grants`, { data: grantBody(agent.hostname, 60, 60), headers: { 'x-csrf-token': csrf } });
    assert.equal(api.status(), 403);
    assert.equal((await api.json()).error.id, 'auth.forbidden');
    const noCsrf = await page.request.post(`${url}/api/v1/grants`, { data: grantBody(agent.hostname, 60, 60) });
    assert.equal(noCsrf.status(), 403);
    const list = await page.request.get(`${url}/api/v1/grants`);
    assert.equal(list.status(), 200, 'reading is allowed');
    const csv = await page.request.get(`${url}/audit/export.csv`);
    assert.equal(csv.status(), 200);
    assert.match(await csv.text(), /^at,actor,type,grantId,endpointId,detail\r\n/);
  });
});
