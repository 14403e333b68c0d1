import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { SmtpSettings, type SmtpSettingsInput } from './smtp.ts';

/** A throwaway self-signed certificate, made by the openssl CLI like the test SMTP server's. */
function selfSignedPem(cn: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jit-ca-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${cn}`, '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { stdio: 'ignore' });
    return readFileSync(path.join(dir, 'c.pem'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const base: SmtpSettingsInput = { host: 'smtp.corp.example', port: 587, security: 'starttls', from: 'jit@corp.example', timeZone: 'UTC' };

/** The messages of the settings' problems, by field; {} when valid. */
function problems(over: Partial<SmtpSettingsInput>): Record<string, string> {
  const r = SmtpSettings.safeParse({ ...base, ...over });
  return r.success ? {} : Object.fromEntries(r.error.issues.map((i) => [i.path.join('.'), i.message]));
}

describe('SMTP settings validation', () => {
  it('accepts a sender with a display name, quoted or not, and a single-label domain', () => {
    for (const from of ['JIT Access <jit@corp>', '"IT, Corp Inc." <jit-access@corp.example>', 'jit@corp.example', '<jit@corp.example>', 'Zoë Ünicode <z@corp.example>']) {
      assert.deepEqual(problems({ from }), {}, from);
    }
  });

  it('refuses a sender with a line break or no usable address', () => {
    for (const from of ['JIT <jit@corp>\r\nBcc: x@evil.example', 'JIT\n <jit@corp>', 'jit@corp\r', 'JIT Access', 'JIT <>', 'A <b@c> <d@e>', 'a@b@c', 'JIT <jit@corp', '"unterminated <jit@corp>']) {
      assert.ok(problems({ from }).from, `${JSON.stringify(from)} should be refused`);
    }
  });

  it('accepts localhost, fully qualified names and IP addresses', () => {
    for (const host of ['localhost', 'smtp.corp.example', 'mail-1.corp.example', '127.0.0.1', '10.0.0.25', '::1', 'fd00::25']) {
      assert.deepEqual(problems({ host }), {}, host);
    }
  });

  it('refuses an IPv4-looking host that is not a valid IPv4 address, and other bad names', () => {
    for (const host of ['999.1.1.1', '1.2.3', '1.2.3.4.5', '256.0.0.1', 'smtp.123', 'not a host', 'smtp', 'a..b', '-smtp.corp.example']) {
      assert.ok(problems({ host }).host, `${host} should be refused`);
    }
    assert.match(problems({ host: '999.1.1.1' }).host!, /IPv4/);
  });

  it('parses tlsCa: one certificate or a bundle is accepted', () => {
    const one = selfSignedPem('ca-one');
    const two = selfSignedPem('ca-two');
    assert.deepEqual(problems({ tlsCa: one }), {});
    assert.deepEqual(problems({ tlsCa: `# corp bundle\n${one}\nsubject=CN = ca-two\n${two}` }), {});
    assert.deepEqual(problems({ tlsCa: '' }), {}, 'empty means none');
  });

  it('refuses a tlsCa that is not a parsable certificate, saying why', () => {
    const good = selfSignedPem('ca-good');
    const broken = good.replace(/(-----BEGIN CERTIFICATE-----\n)(.{20})/, '$1AAAAAAAAAAAAAAAAAAAA');
    const cases: [string, RegExp][] = [
      ['-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n', /certificate 1 of 1/],
      [`${good}${broken}`, /certificate 2 of 2/],
      ['hello', /PEM/],
      [`${good}-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n`, /PRIVATE KEY/],
      [`${good}-----BEGIN CERTIFICATE-----\nMIIB`, /END/],
    ];
    for (const [tlsCa, why] of cases) {
      const p = problems({ tlsCa }).tlsCa;
      assert.ok(p, `should be refused: ${tlsCa.slice(0, 60)}`);
      assert.match(p, why);
    }
  });

  it('takes an optional organisation on one line', () => {
    assert.deepEqual(problems({ organisation: 'Corp Example Ltd' } as Partial<SmtpSettingsInput>), {});
    assert.ok(problems({ organisation: 'Corp\r\nBcc: x' } as Partial<SmtpSettingsInput>).organisation);
    assert.equal(SmtpSettings.safeParse({ ...base, organisation: 'Corp' }).data?.organisation, 'Corp');
  });

  it('keeps zod errors readable for the API (one issue per bad field)', () => {
    const r = SmtpSettings.safeParse({ ...base, host: '999.1.1.1', tlsCa: 'x' });
    assert.ok(!r.success);
    assert.match(z.prettifyError(r.error), /host[\s\S]*tlsCa|tlsCa[\s\S]*host/);
  });
});
