import assert from 'node:assert/strict';
import pino from 'pino';
import type { SmtpSettingsInput } from '../mail/smtp.ts';
import { startSmtpServer, type TestSmtpServer } from '../test/support/smtp.ts';
import type { DeliveryResult } from './sink.ts';
import type { ServerClient } from './client.ts';
import { EmailDelivery } from './delivery.ts';
import type { NameResolver } from './fqdn.ts';
import type { SettingsStore } from './settings.ts';
import { GrantRecord } from './state.ts';

const SMTP_PASSWORD = 'Smtp-Pass-9471';

describe('agent credentials delivery (real SMTP server)', () => {
  let smtp: TestSmtpServer;
  before(async () => {
    smtp = await startSmtpServer({ users: { jit: SMTP_PASSWORD } });
  });
  after(() => smtp.stop());

  function delivery(extra: Partial<SmtpSettingsInput>, resolver: NameResolver) {
    const settings: SmtpSettingsInput = { host: '127.0.0.1', port: smtp.port, security: 'starttls', username: 'jit', password: SMTP_PASSWORD, from: 'jit@corp.example', timeZone: 'UTC', tlsCa: smtp.ca, ...extra };
    const outcomes: DeliveryResult[] = [];
    const d = new EmailDelivery({ smtp: () => settings } as unknown as SettingsStore, {} as ServerClient, pino({ level: 'silent' }), {
      hostname: 'web-01',
      os: 'linux',
      resolver,
      outcome: (_id, r) => outcomes.push(r),
    });
    return { d, outcomes };
  }

  const record = (email: string, plan: Partial<GrantRecord['plan']> = {}): GrantRecord => GrantRecord.parse({
    plan: { grantId: `g-${email}`, group: 'Administrators', email, startAt: '2026-11-21T13:05:00Z', enableAt: '2026-11-21T13:02:00Z', endAt: new Date(Date.now() + 60_000).toISOString(), serverSideSmtp: false, ...plan },
    username: 'jdoe',
    step: 'created',
    enableNow: false,
    removeNow: false,
    attempts: 0,
    alerted: false,
    emailPending: true,
    revoked: false,
  });

  it('names the organisation and the requester, signs with a display name, and gives the FQDN for ssh', async () => {
    const resolver: NameResolver = { lookup: async () => ({ address: '127.0.1.1' }), lookupService: async () => ({ hostname: 'web-01.corp.example' }) };
    const { d, outcomes } = delivery({ organisation: 'Corp Example' }, resolver);
    d.deliver(record('jane@example.com', { requestedBy: 'alice@corp.example' }), 'Secret-Pass-123-xyz');
    const m = await smtp.waitFor((x) => JSON.stringify(x.to).includes('jane@example.com'), 10_000);
    assert.deepEqual(m.from?.value[0], { name: 'Corp Example JIT Access', address: 'jit@corp.example' });
    assert.match(m.text ?? '', /at the request of alice@corp\.example/);
    assert.match(m.text ?? '', /JIT access service of Corp Example/);
    assert.match(m.text ?? '', /ssh jdoe@web-01\.corp\.example/);
    assert.match(m.subject ?? '', /web-01$/);
    await waitUntil(() => outcomes.length > 0);
    assert.deepEqual(outcomes, [{ ok: true, via: 'endpoint' }]);
  });

  it('falls back to the enrolled name when no FQDN is known, and says nothing of a requester it was not told', async () => {
    const resolver: NameResolver = { lookup: async () => ({ address: '127.0.0.1' }), lookupService: async () => ({ hostname: 'localhost' }) };
    const { d } = delivery({ from: 'IT Desk <it@corp.example>' }, resolver);
    d.deliver(record('bob@example.com'), 'Secret-Pass-456-xyz');
    const m = await smtp.waitFor((x) => JSON.stringify(x.to).includes('bob@example.com'), 10_000);
    assert.deepEqual(m.from?.value[0], { name: 'IT Desk', address: 'it@corp.example' });
    assert.match(m.text ?? '', /ssh jdoe@web-01\n/);
    assert.doesNotMatch(m.text ?? '', /request of|JIT access service of/);
  });
});

async function waitUntil(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
