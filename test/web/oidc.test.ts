/**
 * Sign-in with OpenID Connect. The happy path in Debian's Chromium against a real OIDC provider
 * (oidc-provider, in this process, on loopback) with real redirects: the authorization code flow
 * with PKCE, users matched by email, groups mapped to roles. The refusals against a small IdP of
 * this test that signs what it is told to (jose): a wrong audience, another key, an expired
 * token, a wrong nonce, and a wrong state are refused, and nobody is signed in.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import Provider from 'oidc-provider';
import { chromium, type BrowserContext } from 'playwright-core';
import { freePort } from '../../server/db/ports.ts';
import { startStack, type Stack } from '../support/stack.ts';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const CLIENT = { id: 'jit-console', secret: 'jit-console-secret-0123456789' };

/** The stack with OIDC pointing at `issuer`, on a port known before it starts (the redirect URL names it). */
async function stackFor(issuer: string, port: number, extra: Record<string, unknown> = {}): Promise<Stack> {
  return startStack({
    port,
    oidc: {
      issuer, clientId: CLIENT.id, clientSecret: CLIENT.secret, redirectUrl: `http://127.0.0.1:${port}/login/oidc/callback`, scopes: 'openid email groups',
      rolesClaim: 'groups', roles: { 'jit-approvers': 'approver', 'jit-admins': 'admin' }, defaultRole: 'requester', label: 'Sign in with Corp SSO', ...extra,
    },
  });
}

describe('sign-in with OpenID Connect (real provider, Chromium)', function () {
  this.timeout(120_000);
  let idp: http.Server;
  let stack: Stack;
  let profile: string;
  let browser: BrowserContext;
  const groups: Record<string, string[]> = { 'ann@corp.example': ['jit-approvers', 'staff'], 'rick@corp.example': ['staff'] };

  before(async () => {
    const idpPort = await freePort();
    const port = await freePort();
    const issuer = `http://127.0.0.1:${idpPort}`;
    const provider = new Provider(issuer, {
      clients: [{ client_id: CLIENT.id, client_secret: CLIENT.secret, redirect_uris: [`http://127.0.0.1:${port}/login/oidc/callback`], response_types: ['code'], grant_types: ['authorization_code'] }],
      claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
      scopes: ['openid', 'email', 'groups'],
      conformIdTokenClaims: false,
      findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, email: sub, email_verified: true, groups: groups[sub] ?? [] }) }),
      features: { devInteractions: { enabled: true } },
    });
    idp = provider.listen(idpPort, '127.0.0.1');
    stack = await stackFor(issuer, port);
    profile = await mkdtemp(path.join(os.tmpdir(), 'jit-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', args: ARGS, headless: true });
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
    idp?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  /** Through the console's login page, the provider's login and consent pages, and back. */
  async function signIn(email: string) {
    await browser.clearCookies();
    const page = await browser.newPage();
    await page.goto(`${stack.server!.url}/login?next=%2Fgrants`);
    await page.click('#sso');
    await page.waitForURL((u) => u.port !== String(new URL(stack.server!.url).port));
    await page.fill('input[name=login]', email);
    await page.fill('input[name=password]', 'anything');
    await submitUntilBack(page);
    await page.waitForURL((u) => u.href.startsWith(stack.server!.url) && !u.pathname.startsWith('/login'), { timeout: 20_000 });
    return page;
  }

  /** Submits the provider's page (login, then consent the first time) until the browser is back at the console. */
  async function submitUntilBack(page: import('playwright-core').Page) {
    const home = new URL(stack.server!.url).port;
    for (let i = 0; i < 4 && new URL(page.url()).port !== home; i++) {
      await Promise.all([page.waitForNavigation({ timeout: 20_000 }), page.locator('button[type=submit]').first().click()]);
      await page.waitForLoadState('load');
    }
  }

  it('signs a person in through the IdP, makes their user with the role their groups map to, and lands where they were going', async () => {
    const page = await signIn('ann@corp.example');
    assert.equal(new URL(page.url()).pathname, '/grants');
    assert.match(await page.content(), /ann@corp\.example/);
    const user = await stack.server!.ctx.c.users.findOne({ email: 'ann@corp.example' });
    assert.equal(user?.role, 'approver');
    assert.deepEqual(user?.idpGroups, ['jit-approvers', 'staff'], 'kept for request rules (group:…)');
    const login = await stack.server!.ctx.c.audit.findOne({ type: 'auth.login', 'detail.email': 'ann@corp.example' });
    assert.equal(login?.detail.via, 'sso');
    await page.close();
  });

  it('someone in no mapped group gets the default role (requester), who sees none of the admin pages', async () => {
    const page = await signIn('rick@corp.example');
    assert.equal((await stack.server!.ctx.c.users.findOne({ email: 'rick@corp.example' }))?.role, 'requester');
    const res = await page.goto(`${stack.server!.url}/grants`);
    assert.equal(res?.status(), 403);
    await page.close();
  });

  it('a disabled user is refused', async () => {
    await stack.server!.ctx.c.users.updateOne({ email: 'rick@corp.example' }, { $set: { disabled: true } });
    await browser.clearCookies();
    const page = await browser.newPage();
    await page.goto(`${stack.server!.url}/login`);
    await page.click('#sso');
    await page.fill('input[name=login]', 'rick@corp.example');
    await page.fill('input[name=password]', 'x');
    await submitUntilBack(page);
    await page.waitForSelector('#login-error');
    assert.match(await page.textContent('#login-error') ?? '', /disabled/);
    await page.close();
  });
});

describe('sign-in with OpenID Connect: what is refused (an IdP that signs what it is told)', function () {
  this.timeout(60_000);
  let idp: http.Server;
  let stack: Stack;
  let issuer: string;
  let key: CryptoKey;
  let otherKey: CryptoKey;
  let jwk: JWK;
  /** How the next ID token is made wrong. */
  let spoil: { aud?: string; key?: 'other'; expired?: boolean; nonce?: string } = {};
  let nonce = '';

  before(async () => {
    const pair = await generateKeyPair('RS256');
    key = pair.privateKey;
    ({ privateKey: otherKey } = await generateKeyPair('RS256'));
    jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const idpPort = await freePort();
    issuer = `http://127.0.0.1:${idpPort}`;
    idp = http.createServer(async (req, res) => {
      const u = new URL(req.url!, issuer);
      const json = (v: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      if (u.pathname === '/.well-known/openid-configuration') {
        return json({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, response_types_supported: ['code'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'], code_challenge_methods_supported: ['S256'] });
      }
      if (u.pathname === '/jwks') return json({ keys: [jwk] });
      if (u.pathname === '/token') {
        const now = Math.floor(Date.now() / 1000);
        const iat = spoil.expired ? now - 7200 : now;
        const idToken = await new SignJWT({ email: 'mallory@corp.example', email_verified: true, nonce: spoil.nonce ?? nonce, groups: ['jit-admins'] })
          .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
          .setIssuer(issuer)
          .setSubject('mallory')
          .setAudience(spoil.aud ?? CLIENT.id)
          .setIssuedAt(iat)
          .setExpirationTime(iat + 300)
          .sign(spoil.key === 'other' ? otherKey : key);
        return json({ access_token: 'at', token_type: 'Bearer', expires_in: 300, id_token: idToken });
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => idp.listen(idpPort, '127.0.0.1', r));
    stack = await stackFor(issuer, await freePort());
  });
  after(async () => {
    await stack?.stop();
    idp?.close();
  });
  beforeEach(async () => {
    await stack.server!.ctx.c.users.deleteMany({});
    await stack.server!.ctx.c.audit.deleteMany({ type: 'auth.sso-refused' });
  });

  /** Starts a sign-in as a browser would, then comes back with a code and `state` (the real one unless given). */
  async function comeBack(state?: string) {
    const start = await fetch(`${stack.server!.url}/login/oidc`, { redirect: 'manual' });
    const cookie = start.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const to = new URL(start.headers.get('location')!);
    assert.equal(to.origin + to.pathname, `${issuer}/auth`);
    assert.equal(to.searchParams.get('code_challenge_method'), 'S256', 'PKCE');
    nonce = to.searchParams.get('nonce')!;
    const back = await fetch(`${stack.server!.url}/login/oidc/callback?code=c1&state=${encodeURIComponent(state ?? to.searchParams.get('state')!)}`, { headers: { cookie }, redirect: 'manual' });
    return { status: back.status, body: await back.text(), session: back.headers.getSetCookie().some((c) => /^jit_session=[^;]+/.test(c) && !/^jit_session=;/.test(c)) };
  }

  it('a well-made token signs in (the control case)', async () => {
    spoil = {};
    const r = await comeBack();
    assert.equal(r.status, 200, r.body);
    assert.ok(r.session);
    assert.equal((await stack.server!.ctx.c.users.findOne({ email: 'mallory@corp.example' }))?.role, 'admin');
  });

  for (const [what, s] of [['a wrong audience', { aud: 'someone-else' }], ['a signature by another key', { key: 'other' }], ['an expired token', { expired: true }], ['a wrong nonce', { nonce: 'not-the-one' }]] as const) {
    it(`refuses ${what}: nobody signed in, no user made, audited`, async () => {
      spoil = s;
      const r = await comeBack();
      assert.equal(r.status, 403);
      assert.match(r.body, /Sign-in refused/);
      assert.equal(r.session, false);
      assert.equal(await stack.server!.ctx.c.users.countDocuments(), 0);
      assert.ok(await stack.server!.ctx.c.audit.findOne({ type: 'auth.sso-refused' }));
    });
  }

  it('refuses a wrong state', async () => {
    spoil = {};
    const r = await comeBack('forged-state');
    assert.equal(r.status, 403);
    assert.equal(r.session, false);
    assert.equal(await stack.server!.ctx.c.users.countDocuments(), 0);
  });
});
