import assert from 'node:assert/strict';
import type { ParsedMail } from 'mailparser';
import { startSmtpServer, type TestSmtpServer } from '../test/support/smtp.ts';
import { renderEmail } from './render.ts';
import { MailError, sendMail, verifySmtp, type SmtpSettingsInput } from './smtp.ts';

const PASSWORD = 'Corr3ct-h0rse!';
const recipients = (m: ParsedMail) => [m.to ?? []].flat().flatMap((a) => a.value.map((v) => v.address));

describe('smtp (against a real SMTP server)', () => {
  let server: TestSmtpServer;
  let settings: SmtpSettingsInput;

  before(async () => {
    server = await startSmtpServer({ users: { jit: PASSWORD } });
    settings = {
      host: '127.0.0.1',
      port: server.port,
      security: 'starttls',
      username: 'jit',
      password: PASSWORD,
      from: 'jit-access@example.com',
      timeZone: 'Europe/Paris',
      tlsCa: server.ca,
    };
  });
  after(() => server.stop());

  it('verifies working settings', async () => {
    assert.deepEqual(await verifySmtp(settings), { ok: true });
  });

  it('reports a wrong password as auth_failed, without the password', async () => {
    const wrong = 'Wr0ng-but-secret!';
    const r = await verifySmtp({ ...settings, password: wrong });
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.code === 'auth_failed');
    assert.match(r.reason, /535/);
    // The test server echoes the attempt in its reply; it must come out masked.
    assert.match(r.reason, /jit\/\*\*\*/);
    assert.ok(!r.reason.includes(wrong) && !r.reason.includes(Buffer.from(wrong).toString('base64')));
  });

  it('reports an untrusted certificate as tls_failed', async () => {
    const r = await verifySmtp({ ...settings, tlsCa: undefined });
    assert.ok(!r.ok && r.code === 'tls_failed', JSON.stringify(r));
  });

  it('refuses invalid settings without connecting', async () => {
    const r = await verifySmtp({ ...settings, host: 'not a host', port: 70000 });
    assert.ok(!r.ok && r.code === 'invalid_settings', JSON.stringify(r));
    assert.match(r.reason, /host/);
    assert.match(r.reason, /port/);
  });

  it('sends a rendered email over STARTTLS with AUTH', async () => {
    const mail = renderEmail('credentials', {
      endpoint: 'ws-017.corp.example.com',
      os: 'linux',
      username: 'tmpadm1',
      password: 'P@ss<&>w0rd-123',
      email: 'jane@example.com',
      start: new Date('2026-11-21T13:05:00Z'),
      end: new Date('2026-11-21T15:05:00Z'),
    }, { timeZone: 'Europe/Paris' });
    const id = await sendMail(settings, { to: 'jane@example.com', ...mail });
    assert.match(id, /^<.+@.+>$/);

    const m = await server.waitFor((x) => x.messageId === id);
    assert.deepEqual(recipients(m), ['jane@example.com']);
    assert.equal(m.from?.value[0]?.address, 'jit-access@example.com');
    assert.equal(m.subject, 'Your temporary account on ws-017.corp.example.com');
    assert.match(m.text ?? '', /Password: P@ss<&>w0rd-123\n/);
    assert.match(m.text ?? '', /from Sat 21 Nov 2026, 14:05 CET/);
    assert.ok(typeof m.html === 'string' && m.html.includes('P@ss&lt;&amp;&gt;w0rd-123'));
  });

  it('refuses a message whose subject carries a line break', async () => {
    await assert.rejects(
      sendMail(settings, { to: 'jane@example.com', subject: 'Hi\r\nBcc: x@example.com', html: '', text: 'x' }),
      (err: MailError) => err instanceof MailError && err.code === 'invalid_message',
    );
  });

  it('reports a server that is down as connection_failed, and recovers', async () => {
    await server.down();
    try {
      const r = await verifySmtp(settings);
      assert.ok(!r.ok && r.code === 'connection_failed', JSON.stringify(r));
      await assert.rejects(
        sendMail(settings, { to: 'jane@example.com', subject: 'x', html: '', text: 'x' }),
        (err: MailError) => err instanceof MailError && err.code === 'connection_failed',
      );
    } finally {
      await server.up();
    }
    assert.deepEqual(await verifySmtp(settings), { ok: true });
  });

  it('fails with auth_unavailable when credentials are set but the server offers no AUTH; nothing is sent', async () => {
    const open = await startSmtpServer(); // authOptional, AUTH neither advertised nor accepted
    try {
      const s = { ...settings, port: open.port, tlsCa: open.ca };
      const r = await verifySmtp(s);
      assert.ok(!r.ok && r.code === 'auth_unavailable', JSON.stringify(r));
      assert.ok(!r.reason.includes(PASSWORD));
      await assert.rejects(
        sendMail(s, { to: 'jane@example.com', subject: 'Should not go out', html: '', text: 'x' }),
        (err: MailError) => err instanceof MailError && err.code === 'auth_unavailable' && !err.message.includes(PASSWORD),
      );
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(open.messages.length, 0, 'no mail delivered unauthenticated');
      // Without credentials the same server is fine: nothing was configured that it cannot honour.
      const { username: _u, password: _p, ...anonymous } = s;
      assert.deepEqual(await verifySmtp(anonymous), { ok: true });
    } finally {
      await open.stop();
    }
  });

  it('sends with the display name of `from`, or a default one', async () => {
    const named = await sendMail({ ...settings, from: '"IT, Corp" <jit-access@example.com>' }, { to: 'jane@example.com', subject: 'Named', html: '', text: 'x' });
    const m1 = await server.waitFor((x) => x.messageId === named);
    assert.deepEqual(m1.from?.value[0], { name: 'IT, Corp', address: 'jit-access@example.com' });
    const bare = await sendMail({ ...settings, organisation: 'Corp Example' }, { to: 'jane@example.com', subject: 'Bare', html: '', text: 'x' });
    const m2 = await server.waitFor((x) => x.messageId === bare);
    assert.deepEqual(m2.from?.value[0], { name: 'Corp Example JIT Access', address: 'jit-access@example.com' });
  });

  it('sends over implicit TLS', async () => {
    const tlsServer = await startSmtpServer({ users: { jit: PASSWORD }, tls: true });
    try {
      const s = { ...settings, port: tlsServer.port, security: 'tls', tlsCa: tlsServer.ca } as const;
      assert.deepEqual(await verifySmtp(s), { ok: true });
      const id = await sendMail(s, { to: 'bob@example.com', subject: 'Implicit TLS', html: '<p>hi</p>', text: 'hi' });
      const m = await tlsServer.waitFor((x) => x.messageId === id);
      assert.deepEqual(recipients(m), ['bob@example.com']);
      assert.equal(m.subject, 'Implicit TLS');
    } finally {
      await tlsServer.stop();
    }
  });
});
