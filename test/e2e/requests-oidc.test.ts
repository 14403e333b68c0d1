/**
 * Access requests end to end (issue 13): headless Chromium (Debian's, via playwright-core), a real
 * OIDC provider (oidc-provider, in this process, on loopback, as test/web/oidc.test.ts starts it),
 * the real server on FerretDB and a real agent process on a sandbox root in which the requester has
 * her own account. Rita (no IdP group: the default role, requester) and Alex (the group mapped to
 * approver) sign in through the IdP, each in a browser context of their own:
 *
 *   1. Rita asks for Administrators for 5 minutes; Alex approves 1 minute; the grant runs on the
 *      agent to its end (rita in sudo in the root's /etc/group, then out, the grant `removed`).
 *   2. Alex denies the second with a note; Rita sees the note.
 *   3. An admin's auto-approve rule approves the third at once: its grant is enabled on the agent
 *      without any approver.
 *   4. Nobody answers the fourth: it expires, by the server's own sweep, and Rita sees `expired`.
 *
 * Then the audit trail has every transition with its actor: user:<email>, rule:<name>, system.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Provider from 'oidc-provider';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { run } from '../../agent/os/exec.ts';
import { freePort } from '../../server/db/ports.ts';
import { until } from '../support/accounts.ts';
import { expireDue } from '../../server/commands/decideRequest.ts';
import { enrollAgent, startStack, type AgentProc, type Stack } from '../support/stack.ts';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const CLIENT = { id: 'jit-console', secret: 'jit-console-secret-0123456789' };
const RITA = 'rita@corp.example';
const ALEX = 'alex@corp.example';
/** The IdP's groups claim per person: Rita is in no mapped group (requester by default), Alex approves. */
const GROUPS: Record<string, string[]> = { [ALEX]: ['jit-approvers', 'staff'], [RITA]: ['staff'] };
const RULE = 'short admin on linux';

describe('end to end: access requests through OIDC sign-in, decided in the console, run on a real agent', function () {
  this.timeout(300_000);
  let idp: http.Server;
  let stack: Stack;
  let agent: AgentProc;
  let browser: Browser;
  let url: string;
  const contexts: BrowserContext[] = [];
  /** Request ids by what happens to them. */
  const ids: Record<'approved' | 'denied' | 'byRule' | 'unanswered', string> = { approved: '', denied: '', byRule: '', unanswered: '' };
  let rita: Page;
  let alex: Page;

  before(async function () {
    if (process.getuid?.() !== 0) this.skip(); // useradd --prefix and the agent's account changes need root
    const idpPort = await freePort();
    const port = await freePort();
    const issuer = `http://127.0.0.1:${idpPort}`;
    const redirectUrl = `http://127.0.0.1:${port}/login/oidc/callback`;
    const provider = new Provider(issuer, {
      clients: [{ client_id: CLIENT.id, client_secret: CLIENT.secret, redirect_uris: [redirectUrl], response_types: ['code'], grant_types: ['authorization_code'] }],
      claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
      scopes: ['openid', 'email', 'groups'],
      conformIdTokenClaims: false,
      findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, email: sub, email_verified: true, groups: GROUPS[sub] ?? [] }) }),
      features: { devInteractions: { enabled: true } },
    });
    idp = provider.listen(idpPort, '127.0.0.1');
    stack = await startStack({
      port,
      leadTimeSeconds: 2,
      oidc: {
        issuer, clientId: CLIENT.id, clientSecret: CLIENT.secret, redirectUrl, scopes: 'openid email groups',
        rolesClaim: 'groups', roles: { 'jit-approvers': 'approver', 'jit-admins': 'admin' }, defaultRole: 'requester', label: 'Sign in with Corp SSO',
      },
      // One minute is the shortest expiry the config takes: the unanswered request really waits it out.
      requests: { expireAfterMinutes: 1, reasonRequired: true, reasonMinLength: 10, maxMinutes: 60, groups: ['Administrators', 'Users'] },
    });
    url = stack.server!.url;
    // The agent's root with Rita's own account (the email's local part), as an admin would have made it.
    agent = await enrollAgent(stack);
    await run('useradd', ['--prefix', agent.root, '-u', String(2_097_000 + randomInt(900)), '-m', '-s', '/bin/bash', '--', 'rita']);
    agent.start();
    await until(async () => {
      const { body } = await stack.api.request('GET', '/api/v1/endpoints');
      const e = body.endpoints.find((x: { id: string }) => x.id === agent.endpointId);
      return !!e && e.capabilities.includes('elevate-account') && e.accounts.includes('rita');
    }, 30_000, 'the agent’s inventory (elevate-account, rita)');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ARGS, headless: true });
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await agent?.cleanup();
    await stack?.stop();
    idp?.close();
  });

  const db = () => stack.server!.ctx.c;
  const sudoers = async () => ((await readFile(path.join(agent.root, 'etc', 'group'), 'utf8')).split('\n').find((l) => l.startsWith('sudo:')) ?? '').split(':')[3]?.split(',').filter(Boolean) ?? [];
  const row = (page: Page, id: string) => page.locator(`tr[data-request-id="${id}"]`);
  const nav = (page: Page) => page.locator('header nav a').allInnerTexts();
  const idOf = (page: Page) => /\/requests\/([0-9a-f-]+)\?done=/.exec(page.url())![1]!;

  /** A fresh browser context for `email`, signed in through the console's login page and the IdP's login and consent pages. */
  async function signIn(email: string): Promise<Page> {
    const context = await browser.newContext({ timezoneId: 'UTC', viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${url}/login`);
    await page.click('#sso');
    await page.waitForURL((u) => u.port !== new URL(url).port);
    await page.fill('input[name=login]', email);
    await page.fill('input[name=password]', 'anything');
    // The provider's pages (login, then consent) until the browser is back at the console.
    for (let i = 0; i < 4 && new URL(page.url()).port !== new URL(url).port; i++) {
      await Promise.all([page.waitForNavigation({ timeout: 20_000 }), page.locator('button[type=submit]').first().click()]);
      await page.waitForLoadState('load');
    }
    await page.waitForURL((u) => u.href.startsWith(url) && !u.pathname.startsWith('/login'), { timeout: 20_000 });
    return page;
  }

  /** Rita files a request on the Request access page and lands on its page; returns its id. */
  async function file(group: 'Administrators' | 'Users', minutes: number, reason: string, says: string): Promise<string> {
    await rita.goto(`${url}/requests/new`);
    await rita.locator('#endpoint').selectOption(agent.endpointId);
    assert.equal(await rita.locator('#account').innerText(), 'rita', 'her own account, from her email');
    await rita.getByLabel(group, { exact: true }).check();
    await rita.getByLabel('Duration in minutes').fill(String(minutes));
    await rita.getByLabel('Reason').fill(reason);
    await rita.locator('#preview', { hasText: says }).waitFor({ timeout: 5000 });
    await rita.getByRole('button', { name: 'Send request' }).click();
    await rita.waitForURL(/\/requests\/[0-9a-f-]+\?done=filed$/);
    return idOf(rita);
  }

  it('Rita signs in through the IdP: no mapped group, so a requester, on My requests with nothing else', async () => {
    rita = await signIn(RITA);
    assert.equal(new URL(rita.url()).pathname + new URL(rita.url()).search, '/requests?mine=true');
    assert.deepEqual(await nav(rita), ['Request access', 'My requests']);
    assert.equal((await db().users.findOne({ email: RITA }))?.role, 'requester');
    assert.equal((await db().audit.findOne({ type: 'auth.login', 'detail.email': RITA }))?.detail.via, 'sso');
  });

  it('Rita asks for Administrators for 5 minutes with a reason: pending, an approver decides', async () => {
    ids.approved = await file('Administrators', 5, 'update the build toolchain', 'an approver decides');
    assert.equal(await rita.locator('#state').innerText(), 'pending');
    assert.equal(await rita.locator('#reason').innerText(), 'update the build toolchain');
    const r = (await db().requests.findOne({ _id: ids.approved }))!;
    assert.deepEqual([r.state, r.account, r.group, r.minutes, r.rule, r.requesterEmail], ['pending', 'rita', 'Administrators', 5, 'default', RITA]);
    assert.deepEqual(await sudoers(), [], 'nothing on the endpoint yet');
  });

  it('Alex (approver through his IdP group) approves it for 1 minute with a note; the agent puts rita in sudo', async () => {
    alex = await signIn(ALEX);
    assert.equal((await db().users.findOne({ email: ALEX }))?.role, 'approver');
    assert.equal(new URL(alex.url()).pathname, '/');
    assert.equal(await alex.locator('#pending-count').innerText(), '1');
    await alex.goto(`${url}/requests`);
    assert.equal(await alex.locator('h1').innerText(), 'Approvals');
    assert.match(await row(alex, ids.approved).innerText(), /rita@corp\.example[\s\S]*Administrators\s+5\s+update the build toolchain/);
    assert.equal(await alex.locator(`#approve-minutes-${ids.approved}`).inputValue(), '5', 'the asked minutes by default');
    await alex.locator(`#approve-minutes-${ids.approved}`).fill('1');
    await alex.locator(`#approve-note-${ids.approved}`).fill('one minute is plenty');
    await alex.locator(`#approve-${ids.approved}`).click();
    await alex.waitForURL(`${url}/requests/${ids.approved}?done=approved`);
    assert.equal(await alex.locator('#state').innerText(), 'approved');
    assert.equal((await alex.locator('#decided-by').innerText()).split(',')[0], `user:${ALEX}`);
    const r = (await db().requests.findOne({ _id: ids.approved }))!;
    const grant = (await db().grants.findOne({ _id: r.grantId! }))!;
    assert.equal((grant.endAt.getTime() - grant.startAt.getTime()) / 60_000, 1, 'the shorter duration');
    assert.deepEqual([grant.operation, grant.account, grant.group, grant.endpointId], ['elevate-account', 'rita', 'Administrators', agent.endpointId]);
    await stack.api.waitGrant(grant._id, (g) => g.state === 'enabled', 20_000);
    assert.deepEqual(await sudoers(), ['rita']);
  });

  it('Rita files two more; Alex denies one with a note and leaves the other; Rita sees the note and her approval live', async () => {
    ids.denied = await file('Administrators', 30, 'check the firewall rules', 'an approver decides');
    // The one nobody will answer (another group: one open request per endpoint and group).
    ids.unanswered = await file('Users', 10, 'read the service logs', 'an approver decides');
    await alex.goto(`${url}/requests`);
    assert.deepEqual((await alex.locator('tr[data-request-id]').evaluateAll((rs) => rs.map((r) => (r as HTMLElement).dataset.requestId))).sort(), [ids.denied, ids.unanswered].sort());
    await alex.locator(`#deny-note-${ids.denied}`).fill('not during the release freeze');
    await alex.locator(`#deny-${ids.denied}`).click();
    await alex.waitForURL(`${url}/requests/${ids.denied}?done=denied`);
    assert.equal(await alex.locator('#state').innerText(), 'denied');
    // No page of Alex's stays open to read (and so expire) the unanswered one later.
    await alex.goto('about:blank');

    await rita.goto(`${url}/requests?mine=true`);
    const denied = row(rita, ids.denied);
    assert.equal(await denied.getAttribute('data-state'), 'denied');
    assert.equal(await denied.locator('td.note').innerText(), 'not during the release freeze');
    assert.match(await denied.innerText(), /user:alex@corp\.example/);
    const approved = row(rita, ids.approved);
    assert.equal(await approved.getAttribute('data-state'), 'approved');
    assert.equal(await approved.locator('td.grant').innerText(), 'enabled', 'the grant’s live state');
    assert.equal(await approved.locator('td.note').innerText(), 'one minute is plenty');
    assert.equal(await row(rita, ids.unanswered).getAttribute('data-state'), 'pending', 'not expired before its minute');
    await rita.goto(`${url}/requests/${ids.denied}`);
    assert.equal(await rita.locator('#note').innerText(), 'not during the release freeze');
    assert.equal(await rita.locator(`#approve-${ids.denied}`).count(), 0);
    await rita.goto('about:blank');
  });

  it('the approved grant runs to its end on the agent: rita out of sudo, the grant removed, and her request says so', async () => {
    const grantId = (await db().requests.findOne({ _id: ids.approved }))!.grantId!;
    const g = await stack.api.waitGrant(grantId, (x) => x.state === 'removed', 100_000);
    assert.deepEqual(await sudoers(), []);
    const types = g.timeline.map((e: { type: string }) => e.type);
    for (const t of ['grant.requested', 'agent.enabled', 'agent.disabled', 'agent.removed']) assert.ok(types.includes(t), `${t} in ${types.join(', ')}`);
    assert.ok(Date.now() >= Date.parse(g.endAt), 'not before its end');
    // Her request's page only: her list would read (and so expire) the unanswered request, which the sweep is to do.
    await rita.goto(`${url}/requests/${ids.approved}`);
    assert.match(await rita.locator('#grant').innerText(), /^removed/);
    await rita.goto('about:blank');
  });

  it('an admin’s auto-approve rule approves the third request at once: its grant is enabled on the agent without any approver', async () => {
    const put = await stack.api.request('PUT', '/api/v1/request-rules', { rules: [{ name: RULE, os: ['linux'], groups: ['Administrators'], maxMinutes: 2, action: 'auto-approve' }] });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    ids.byRule = await file('Administrators', 2, 'restart the stuck print spooler', `the rule "${RULE}": approved at once`);
    assert.equal(await rita.locator('#state').innerText(), 'approved');
    assert.equal((await rita.locator('#decided-by').innerText()).split(',')[0], `rule:${RULE}`);
    await rita.goto('about:blank');
    const { body } = await stack.api.request('GET', `/api/v1/requests/${ids.byRule}`);
    assert.equal(body.decidedBy, `rule:${RULE}`);
    assert.equal(body.rule.action, 'auto-approve');
    const g = await stack.api.waitGrant(body.grant.id, (x) => x.state === 'enabled', 20_000);
    assert.deepEqual(await sudoers(), ['rita']);
    assert.equal(g.account, 'rita');
    assert.equal((Date.parse(g.endAt) - Date.parse(g.startAt)) / 60_000, 2);
    const requested = await db().audit.findOne({ grantId: body.grant.id, type: 'grant.requested' });
    assert.equal(requested?.actor, `rule:${RULE}`, 'the rule made the grant; no person did');
  });

  it('nobody answers the fourth: the server’s sweep expires it (no one reads it meanwhile), and Rita sees expired', async () => {
    // Its time brought forward in the database, then the server's own sweep (server.ts runs it every
    // minute) called rather than waited for: up to two minutes of this suite. Nothing reads the
    // request meanwhile (a read expires a due request itself), so the sweep is what moves it.
    const expiresAt = new Date(Date.now() - 1000);
    await db().requests.updateOne({ _id: ids.unanswered }, { $set: { expiresAt } });
    assert.equal((await db().requests.findOne({ _id: ids.unanswered }))!.state, 'pending');
    assert.equal(await expireDue(stack.server!.ctx), 1, 'the sweep expired one request');
    const expired = (await db().audit.findOne({ requestId: ids.unanswered, type: 'request.expired' }))!;
    assert.ok(expired.at >= expiresAt, 'not before its time');
    const r = (await db().requests.findOne({ _id: ids.unanswered }))!;
    assert.equal(r.grantId, undefined, 'no grant');
    assert.equal(r.decidedBy, undefined, 'nobody decided');
    await rita.goto(`${url}/requests?mine=true`);
    const mine = row(rita, ids.unanswered);
    assert.equal(await mine.getAttribute('data-state'), 'expired');
    assert.equal(await mine.locator('button', { hasText: 'Cancel' }).count(), 0);
    await rita.goto(`${url}/requests/${ids.unanswered}`);
    assert.equal(await rita.locator('#state').innerText(), 'expired');
    assert.deepEqual(await rita.locator('#events li').evaluateAll((ls) => ls.map((l) => (l as HTMLElement).dataset.type)), ['request.created', 'request.expired']);
  });

  it('the audit trail has every transition with its actor: the people, the rule, the system', async () => {
    const events = await db().audit.find({ requestId: { $in: Object.values(ids) }, type: /^request\./ }).sort({ seq: 1 }).toArray();
    const of = (id: string) => events.filter((e) => e.requestId === id).map((e) => `${e.type} ${e.actor}`);
    assert.deepEqual(of(ids.approved), [`request.created user:${RITA}`, `request.approved user:${ALEX}`]);
    assert.deepEqual(of(ids.denied), [`request.created user:${RITA}`, `request.denied user:${ALEX}`]);
    assert.deepEqual(of(ids.byRule), [`request.created user:${RITA}`, `request.approved rule:${RULE}`]);
    assert.deepEqual(of(ids.unanswered), [`request.created user:${RITA}`, 'request.expired system']);
    const detail = (id: string, type: string) => events.find((e) => e.requestId === id && e.type === type)!.detail;
    assert.equal(detail(ids.approved, 'request.created').reason, 'update the build toolchain');
    assert.equal(detail(ids.approved, 'request.approved').note, 'one minute is plenty');
    assert.equal(detail(ids.denied, 'request.denied').note, 'not during the release freeze');
    assert.equal(detail(ids.byRule, 'request.created').action, 'auto-approve');
    const rules = await db().audit.findOne({ type: 'request-rules.changed' });
    assert.equal(rules?.actor, 'admin');
  });
});
