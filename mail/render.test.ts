import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { renderEmail, type EmailVars } from './render.ts';

const creds: EmailVars<'credentials'> = {
  endpoint: 'DESKTOP-42',
  os: 'windows',
  username: 'jdoe',
  password: 'Ab3<x>&"y\'z',
  email: 'jane.doe@example.com',
  start: new Date('2026-11-21T13:05:00Z'),
  end: new Date('2026-11-21T15:05:00Z'),
};

describe('renderEmail', () => {
  let dirs: string[] = [];
  const overrideDir = async (files: Record<string, string>) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'jit-tpl-'));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
    return dir;
  };
  afterEach(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    dirs = [];
  });

  it('renders the credentials email in all three parts', () => {
    const r = renderEmail('credentials', creds, { timeZone: 'UTC' });
    assert.equal(r.subject, 'Your temporary account on DESKTOP-42');
    assert.match(r.text, /A temporary account has been created for you on DESKTOP-42\./);
    assert.match(r.text, /Username: jdoe\n\s+Password: Ab3<x>&"y'z\n/);
    assert.match(r.text, /from Sat 21 Nov 2026, 13:05 UTC until Sat 21 Nov 2026, 15:05 UTC/);
    assert.match(r.html, /<code[^>]*>Ab3&lt;x&gt;&amp;&quot;y&#x27;z<\/code>/);
  });

  it('escapes HTML in the html part only', () => {
    const r = renderEmail('credentials', { ...creds, endpoint: '<script>alert(1)</script>' }, { timeZone: 'UTC' });
    assert.ok(!r.html.includes('<script>'));
    assert.ok(r.html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(r.text.includes('<script>alert(1)</script>'), 'text is not HTML, so it is not escaped');
    assert.equal(r.subject, 'Your temporary account on <script>alert(1)</script>');
  });

  it('explains how to log in for each OS', () => {
    const how = (o: 'windows' | 'macos' | 'linux') => renderEmail('credentials', { ...creds, os: o }, { timeZone: 'UTC' }).text;
    assert.match(how('windows'), /sign in as\n\.\\jdoe /);
    assert.match(how('macos'), /choose "Other…"/);
    assert.match(how('linux'), /ssh jdoe@DESKTOP-42/);
    assert.doesNotMatch(how('linux'), /Windows|Other…/);
  });

  it('renders the access-ended email for both reasons', () => {
    const vars = { endpoint: 'mac-01', username: 'jdoe', email: 'jane.doe@example.com', end: creds.end } as const;
    const revoked = renderEmail('access-ended', { ...vars, reason: 'revoked' }, { timeZone: 'UTC' });
    assert.equal(revoked.subject, 'Your temporary access to mac-01 was revoked');
    assert.match(revoked.text, /jdoe on mac-01 was revoked on Sat 21 Nov 2026, 15:05 UTC/);
    const expired = renderEmail('access-ended', { ...vars, reason: 'expired' }, { timeZone: 'UTC' });
    assert.equal(expired.subject, 'Your temporary access to mac-01 has ended');
    assert.match(expired.html, /<strong>expired<\/strong>/);
  });

  it('formats times in the time zone with its abbreviation or offset', () => {
    const text = (timeZone: string) => renderEmail('credentials', creds, { timeZone }).text;
    assert.match(text('Europe/Paris'), /from Sat 21 Nov 2026, 14:05 CET until Sat 21 Nov 2026, 16:05 CET/);
    assert.match(text('America/New_York'), /from Sat 21 Nov 2026, 08:05 EST/);
    assert.match(text('Asia/Kolkata'), /from Sat 21 Nov 2026, 18:35 UTC\+05:30/);
  });

  it('never shows an end later than the real one: seconds are shown when there are any', () => {
    const r = renderEmail('credentials', { ...creds, end: new Date('2026-11-21T16:36:56.400Z') }, { timeZone: 'Europe/Paris' });
    assert.match(r.text, /until Sat 21 Nov 2026, 17:36:56 CET/);
    assert.match(r.text, /from Sat 21 Nov 2026, 14:05 CET/, 'whole minutes stay short');
    const ended = renderEmail('access-ended', { endpoint: 'mac-01', username: 'jdoe', email: 'jane.doe@example.com', reason: 'expired', end: new Date('2026-11-21T16:36:56Z') }, { timeZone: 'UTC' });
    assert.match(ended.text, /expired on Sat 21 Nov 2026, 16:36:56 UTC/);
  });

  it('names the organisation and who requested the access, escaped in HTML', () => {
    const vars = { ...creds, organisation: 'Corp & Co', requestedBy: 'alice@corp.example' };
    const r = renderEmail('credentials', vars, { timeZone: 'UTC' });
    assert.match(r.text, /created for you on DESKTOP-42 at the request of alice@corp\.example\./);
    assert.match(r.text, /Corp & Co/);
    assert.ok(r.html.includes('Corp &amp; Co') && r.html.includes('alice@corp.example'));
    const plain = renderEmail('credentials', creds, { timeZone: 'UTC' });
    assert.doesNotMatch(plain.text, /request of|null|undefined/);
    const ended = renderEmail('access-ended', { endpoint: 'mac-01', username: 'jdoe', email: 'jane.doe@example.com', reason: 'revoked', end: creds.end, organisation: 'Corp & Co' }, { timeZone: 'UTC' });
    assert.match(ended.text, /Corp & Co/);
    const test = renderEmail('smtp-test', { endpoint: 'the server', email: 'a@corp.example', sentAt: creds.start, organisation: 'Corp & Co' }, { timeZone: 'UTC' });
    assert.match(test.text, /Corp & Co/);
  });

  it('gives the SSH hint with the fully qualified name when there is one', () => {
    const r = renderEmail('credentials', { ...creds, os: 'linux', endpoint: 'web-01', sshHost: 'web-01.corp.example' }, { timeZone: 'UTC' });
    assert.match(r.text, /ssh jdoe@web-01\.corp\.example/);
    assert.match(r.html, /ssh jdoe@web-01\.corp\.example/);
    assert.match(r.subject, /web-01$/);
    assert.throws(() => renderEmail('credentials', { ...creds, sshHost: 'a b' }, { timeZone: 'UTC' }), /sshHost/);
  });

  it('refuses an unknown time zone', () => {
    assert.throws(() => renderEmail('credentials', creds, { timeZone: 'Mars/Olympus_Mons' }), /unknown time zone "Mars\/Olympus_Mons"/);
  });

  it('refuses invalid variables before rendering', () => {
    assert.throws(() => renderEmail('credentials', { ...creds, username: 'Admin' }, { timeZone: 'UTC' }), /username/);
    assert.throws(() => renderEmail('credentials', { ...creds, email: 'x@example.com\r\nBcc: y@example.com' }, { timeZone: 'UTC' }), /email/);
    assert.throws(() => renderEmail('credentials', { ...creds, endpoint: 'pc\r\nBcc: y@example.com' }, { timeZone: 'UTC' }), /endpoint/);
    assert.throws(() => renderEmail('credentials', { ...creds, start: creds.end }, { timeZone: 'UTC' }), /start must be before end/);
  });

  it('never reveals the password in a validation error', () => {
    const password = 'has space secret';
    assert.throws(
      () => renderEmail('credentials', { ...creds, password }, { timeZone: 'UTC' }),
      (err: Error) => /password/.test(err.message) && !err.message.includes(password),
    );
  });

  it('refuses a subject template that renders a line break', async () => {
    const dir = await overrideDir({ 'credentials.subject.hbs': 'Account\nBcc: attacker@example.com\n' });
    assert.throws(() => renderEmail('credentials', creds, { timeZone: 'UTC', overrideDir: dir }), /subject template must render a single/);
  });

  it('takes override templates file by file', async () => {
    const dir = await overrideDir({ 'credentials.subject.hbs': 'Access for {{username}} on {{endpoint}}\n' });
    const r = renderEmail('credentials', creds, { timeZone: 'UTC', overrideDir: dir });
    assert.equal(r.subject, 'Access for jdoe on DESKTOP-42', 'the final newline of the file is dropped');
    assert.match(r.text, /A temporary account has been created/, 'parts without an override use the built-in template');
  });

  it('fails on an override that uses an unknown variable', async () => {
    const dir = await overrideDir({ 'credentials.text.hbs': 'Password: {{pasword}}' });
    assert.throws(() => renderEmail('credentials', creds, { timeZone: 'UTC', overrideDir: dir }), /"pasword" not defined/);
  });
});
