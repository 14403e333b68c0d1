import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import type { ParsedMail } from 'mailparser';
import { accountGone, passwordMatches, until } from '../support/accounts.ts';
import { passwordIn, textsAtRest, type TextAtRest } from '../support/atRest.ts';
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.ts';
import { enrollAgent, grantBody, startStack, type AgentProc, type Stack } from '../support/stack.ts';

const SMTP_USER = 'jit-mailer';
const SMTP_PASSWORD = 'Smtp-Secret-4711';

/** Username and password from a credentials email's text part. */
function credentialsIn(m: ParsedMail): { username: string; password: string } {
  const username = /Username: (\S+)/.exec(m.text ?? '')?.[1];
  const password = passwordIn(m.text);
  assert.ok(username && password, `no credentials in: ${m.text}`);
  return { username, password };
}

const to = (addr: string) => (m: ParsedMail) => JSON.stringify(m.to).includes(addr);

describe('credentials by email, with a real SMTP server (STARTTLS + AUTH)', function () {
  this.timeout(120_000);
  let stack: Stack;
  let smtp: TestSmtpServer;
  let agent: AgentProc;
  const seenPasswords: string[] = [];
  let n = 0;
  const nextEmail = () => `user${++n}-${Date.now()}@example.com`;

  const policy = (from: string, password = SMTP_PASSWORD) => ({
    host: '127.0.0.1',
    port: smtp.port,
    security: 'starttls',
    username: SMTP_USER,
    password,
    from,
    organisation: 'Corp Example',
    timeZone: 'Europe/Paris',
    tlsCa: smtp.ca,
  });

  before(async () => {
    smtp = await startSmtpServer({ users: { [SMTP_USER]: SMTP_PASSWORD } });
    stack = await startStack({ leadTimeSeconds: 1 });
    agent = await enrollAgent(stack, 'web-01');
    agent.start();
    assert.equal((await stack.api.request('PUT', '/api/v1/agent-settings', policy('agent@jit.example'))).status, 200);
    assert.equal((await stack.api.request('PUT', '/api/v1/server-smtp', policy('server@jit.example'))).status, 200);
  });
  after(async () => {
    await agent?.cleanup();
    await stack?.stop();
    await smtp?.stop();
  });

  async function grantAndMail(serverSideSmtp: boolean, startIn = 2, seconds = 6) {
    const email = nextEmail();
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.endpointId, startIn, seconds, { email, serverSideSmtp }));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const grant = res.body.grants[0];
    const mail = await smtp.waitFor(to(email), 30_000);
    const creds = credentialsIn(mail);
    seenPasswords.push(creds.password);
    return { grant, email, mail, creds };
  }

  it('sends from the endpoint: right recipient, subject and times, and the real password', async () => {
    const { grant, email, mail, creds } = await grantAndMail(false);
    assert.deepEqual(mail.from!.value[0], { name: 'Corp Example JIT Access', address: 'agent@jit.example' });
    assert.match(mail.subject!, /temporary account/i);
    assert.match(mail.text!, /JIT access service of Corp Example/);
    // In Paris time (CET or CEST), with the seconds: an end is never rounded up.
    const end = DateTime.fromISO(grant.endAt, { zone: 'Europe/Paris' }).setLocale('en-GB');
    const paris = `until ${end.toFormat(end.second ? 'ccc d LLL yyyy, HH:mm:ss' : 'ccc d LLL yyyy, HH:mm')} ${end.toFormat('ZZZZ')}.`;
    assert.ok(mail.text!.includes(paris), `end time ${paris} in ${mail.text}`);
    const g = await stack.api.waitGrant(grant.id, (x) => x.emailDelivery.status === 'sent');
    assert.equal(creds.username, g.username);
    assert.ok(await passwordMatches(agent.root, creds.username, creds.password), 'the emailed password is the account password');
    // Hostnames are DNS names since enrollment checks them; escaping of values is mail/render.test.ts's.
    assert.ok(String(mail.html).includes('web-01'), 'endpoint name in the HTML part');
    await until(() => accountGone(agent.root, creds.username), 20_000, 'removed at the end');
    const ended = await smtp.waitFor((m) => to(email)(m) && m !== mail, 20_000);
    assert.match(ended.text!, /ended|expired|no longer/i);
  });

  it('sends from the server with server-side SMTP', async () => {
    const { grant, mail, creds } = await grantAndMail(true);
    assert.match(mail.from!.text, /server@jit\.example/);
    // The API's admin token made the grant; the server knows its creator.
    assert.match(mail.text!, /at the request of an administrator\./);
    assert.ok(await passwordMatches(agent.root, creds.username, creds.password));
    const g = await stack.api.waitGrant(grant.id, (x) => x.emailDelivery.status === 'sent');
    const types = g.timeline.map((e: { type: string }) => e.type);
    assert.ok(types.includes('credentials.handed-over') && types.includes('email.sent'), types.join(' '));
    await stack.api.waitGrant(grant.id, (x) => x.state === 'removed');
  });

  for (const serverSideSmtp of [false, true]) {
    it(`retries while SMTP is down and delivers when it is back (${serverSideSmtp ? 'server' : 'endpoint'})`, async () => {
      await smtp.down();
      const email = nextEmail();
      const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.endpointId, 1, 14, { email, serverSideSmtp }));
      const id = res.body.grants[0].id;
      const failing = await stack.api.waitGrant(id, (x) => x.emailDelivery.attempts >= 2);
      assert.equal(failing.emailDelivery.status, 'failed');
      assert.match(failing.emailDelivery.lastError, /connection_failed/);
      assert.ok(failing.timeline.filter((e: { type: string }) => e.type === 'email.attempt-failed').length >= 2);
      await smtp.up();
      const mail = await smtp.waitFor(to(email), 40_000);
      seenPasswords.push(credentialsIn(mail).password);
      const g = await stack.api.waitGrant(id, (x) => x.state === 'removed', 40_000);
      assert.equal(g.emailDelivery.status, 'sent');
      assert.ok(Date.parse(g.updatedAt) - Date.parse(g.endAt) < 3000, 'the account still ends on time');
    });
  }

  it('fails clearly with wrong SMTP credentials, without leaking the SMTP password', async () => {
    const wrong = 'Wrong-Pass-000';
    await stack.api.request('PUT', '/api/v1/agent-settings', policy('agent@jit.example', wrong));
    try {
      const test = await stack.api.request('POST', '/api/v1/agent-settings/test', { endpoint: agent.endpointId });
      assert.equal(test.status, 200);
      assert.equal(test.body.ok, false);
      assert.equal(test.body.code, 'auth_failed');
      const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.endpointId, 1, 5, { email: nextEmail() }));
      const g = await stack.api.waitGrant(res.body.grants[0].id, (x) => x.emailDelivery.status === 'failed');
      assert.match(g.emailDelivery.lastError, /auth_failed/);
      assert.ok(g.timeline.some((e: { type: string; detail: { error?: string } }) => e.type === 'email.attempt-failed' && /auth_failed/.test(e.detail.error ?? '')));
      await stack.api.waitGrant(g.id, (x) => x.state === 'removed');
      const logs = (await agent.log()) + (await stack.serverLog());
      assert.ok(!logs.includes(wrong) && !logs.includes(SMTP_PASSWORD), 'no SMTP password in any log');
    } finally {
      await stack.api.request('PUT', '/api/v1/agent-settings', policy('agent@jit.example'));
    }
    const ok = await stack.api.request('POST', '/api/v1/agent-settings/test', { endpoint: agent.endpointId, to: 'admin@example.com' });
    assert.deepEqual(ok.body, { ok: true });
    const fromAgent = await smtp.waitFor((m) => to('admin@example.com')(m) && /agent@jit/.test(m.from!.text), 10_000);
    assert.match(fromAgent.subject!, /Test email from JIT access \(web-01\)/);
    const server = await stack.api.request('POST', '/api/v1/server-smtp/test', { to: 'admin@example.com' });
    assert.deepEqual(server.body, { ok: true });
    await smtp.waitFor((m) => to('admin@example.com')(m) && /server@jit/.test(m.from!.text), 10_000);
    const bare = await stack.api.request('POST', '/api/v1/server-smtp/test');
    assert.deepEqual(bare.body, { ok: true }, 'without an address it only connects');
  });

  it('fails with auth_unavailable when the SMTP server offers no AUTH, and sends nothing unauthenticated', async () => {
    const open = await startSmtpServer(); // authOptional, no AUTH advertised
    await stack.api.request('PUT', '/api/v1/agent-settings', { ...policy('agent@jit.example'), port: open.port, tlsCa: open.ca });
    try {
      const test = await stack.api.request('POST', '/api/v1/agent-settings/test', { endpoint: agent.endpointId, to: 'admin@example.com' });
      assert.equal(test.body.ok, false, JSON.stringify(test.body));
      assert.equal(test.body.code, 'auth_unavailable');
      const server = await stack.api.request('PUT', '/api/v1/server-smtp', { ...policy('server@jit.example'), port: open.port, tlsCa: open.ca });
      assert.equal(server.status, 200);
      assert.equal((await stack.api.request('POST', '/api/v1/server-smtp/test')).body.code, 'auth_unavailable');
      const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.endpointId, 1, 5, { email: nextEmail() }));
      const g = await stack.api.waitGrant(res.body.grants[0].id, (x) => x.emailDelivery.status === 'failed');
      assert.match(g.emailDelivery.lastError, /auth_unavailable/);
      await stack.api.waitGrant(g.id, (x) => x.state === 'removed');
      assert.equal(open.messages.length, 0, 'nothing was delivered without logging in');
    } finally {
      await stack.api.request('PUT', '/api/v1/agent-settings', policy('agent@jit.example'));
      await stack.api.request('PUT', '/api/v1/server-smtp', policy('server@jit.example'));
      await open.stop();
    }
  });

  it('takes the SMTP settings real servers need, and refuses broken ones with the reason', async () => {
    const put = (body: Record<string, unknown>) => stack.api.request('PUT', '/api/v1/server-smtp', { ...policy('server@jit.example'), ...body });
    const field = (res: { body: { error?: { fields?: { field: string; message: string }[] } } }, name: string) => res.body.error?.fields?.find((f) => f.field === name)?.message ?? '';
    try {
      const named = await put({ host: 'localhost', from: 'JIT Access <jit@corp>' });
      assert.equal(named.status, 200, JSON.stringify(named.body));
      assert.deepEqual((await stack.api.request('POST', '/api/v1/server-smtp/test', { to: 'named@example.com' })).body, { ok: true });
      const m = await smtp.waitFor(to('named@example.com'), 10_000);
      assert.deepEqual(m.from!.value[0], { name: 'JIT Access', address: 'jit@corp' });
      const badCa = await put({ tlsCa: '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n' });
      assert.equal(badCa.status, 400);
      assert.match(field(badCa, 'tlsCa'), /certificate 1 of 1 cannot be read/);
      const badHost = await put({ host: '999.1.1.1' });
      assert.equal(badHost.status, 400);
      assert.match(field(badHost, 'host'), /not a valid IPv4 address/);
      const crlf = await put({ from: 'JIT <jit@corp>\r\nBcc: x@evil.example' });
      assert.equal(crlf.status, 400);
      assert.ok(field(crlf, 'from'));
    } finally {
      await put({});
    }
  });

  it('resends with a new password; the old one stops working', async () => {
    const { grant, email, mail, creds } = await grantAndMail(false, 1, 30);
    await stack.api.waitGrant(grant.id, (x) => x.emailDelivery.status === 'sent');
    const res = await stack.api.request('POST', `/api/v1/grants/${grant.id}/resend`);
    assert.equal(res.status, 202);
    const second = await smtp.waitFor((m) => to(email)(m) && m !== mail, 20_000);
    const fresh = credentialsIn(second);
    seenPasswords.push(fresh.password);
    assert.equal(fresh.username, creds.username);
    assert.notEqual(fresh.password, creds.password);
    assert.ok(await passwordMatches(agent.root, fresh.username, fresh.password), 'new password works');
    assert.equal(await passwordMatches(agent.root, creds.username, creds.password), false, 'old password no longer works');
    await stack.api.request('POST', `/api/v1/grants/${grant.id}/revoke`);
    await stack.api.waitGrant(grant.id, (x) => x.state === 'revoked');
  });

  it('never shows the SMTP password through the API', async () => {
    const { body } = await stack.api.request('GET', '/api/v1/agent-settings');
    assert.equal(body.default.passwordSet, true);
    assert.ok(!JSON.stringify(body).includes(SMTP_PASSWORD));
    const stored = await stack.server!.ctx.c.smtpPolicies.findOne({ _id: 'default' });
    assert.match(stored!.passwordBox!, /^v1:/);
  });

  it('leaves no generated password or SMTP password in the database, the logs, the audit trail or the state file', async () => {
    assert.ok(seenPasswords.length >= 5);
    const texts = await textsAtRest(stack.server!.db, await stack.serverLog(), [agent]);
    const all = (kind: TextAtRest['kind']) => texts.filter((t) => t.kind === kind).map((t) => t.text).join('');
    const haystacks = { database: all('collection'), 'server log': all('server log'), 'agent log': all('agent log'), 'state file': all('agent file') };
    for (const [where, text] of Object.entries(haystacks)) {
      assert.ok(text.length > 100, `${where} is not empty`);
      for (const p of [...seenPasswords, SMTP_PASSWORD]) assert.ok(!text.includes(p), `a password appears in the ${where}`);
    }
  });
});
