import assert from 'node:assert/strict';
import net from 'node:net';
import { createUser } from '../../server/web/users.ts';
import { ADMIN_TOKEN, startStack, type Stack } from '../support/stack.ts';
import { ConsoleClient } from './consoleClient.ts';

interface RawAnswer {
  status: number;
  headers: string;
  body: string;
  /** From the last byte sent to the server's answer (or its closing the connection). */
  ms: number;
}

/**
 * One HTTP/1.1 exchange over a raw socket: `head` (request line and headers,
 * without the blank line) and `body` exactly as given, no client-side
 * normalisation. `abortAfterMs` closes the socket from the client's side;
 * `headUnfinished` leaves out the blank line that ends the headers.
 */
function raw(port: number, head: string, body: Buffer | string = '', opts: { abortAfterMs?: number; headUnfinished?: boolean } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let sentAt = 0;
    socket.on('connect', () => {
      socket.write(`${head.replace(/\n/g, '\r\n')}\r\n${opts.headUnfinished ? '' : '\r\n'}`);
      socket.write(body, () => (sentAt = Date.now()));
      if (opts.abortAfterMs !== undefined) setTimeout(() => socket.destroy(), opts.abortAfterMs);
    });
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [headers = '', rest = ''] = text.split('\r\n\r\n', 2);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0), headers, body: rest, ms: Date.now() - sentAt });
    });
  });
}

const json = (a: RawAnswer) => JSON.parse(a.body.replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, ''));

/** Client mistakes answered with a 4xx and a stable id, never a 500 and never an error in the log. */
describe('client errors: 4xx with a stable id, nothing logged as a server error', function () {
  this.timeout(120_000);
  let stack: Stack;
  let port: number;
  let web: ConsoleClient;
  let logFrom = 0;

  before(async () => {
    stack = await startStack({ requestTimeoutSeconds: 3 });
    port = Number(new URL(stack.api.url).port);
    await createUser(stack.server!.ctx, { email: 'errors@example.com', role: 'admin', password: 'errors password 1' }, 'test');
    web = new ConsoleClient(stack.api.url);
    assert.equal((await web.login('errors@example.com', 'errors password 1')).status, 303);
  });
  after(() => stack?.stop());

  beforeEach(async () => {
    logFrom = (await stack.serverLog()).length;
  });
  afterEach(async function () {
    if (this.currentTest?.state !== 'passed') return;
    await new Promise((r) => setTimeout(r, 300));
    const lines = (await stack.serverLog()).slice(logFrom).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string });
    const errors = lines.filter((l) => l.level >= 50);
    assert.deepEqual(errors, [], 'no error-level log line for a client mistake');
  });

  const admin = `Authorization: Bearer ${ADMIN_TOKEN}`;
  const session = () => `Cookie: jit_session=${web.cookie('jit_session')}`;
  const gibberish = Buffer.from('{"operation":"temporary-access"}');

  function expectApi(a: RawAnswer, status: number, id: string) {
    assert.equal(a.status, status, a.headers + a.body);
    assert.equal(json(a).error.id, id);
  }
  function expectPage(a: RawAnswer, status: number, id: string) {
    assert.equal(a.status, status, a.headers + a.body.slice(0, 300));
    assert.match(a.body, new RegExp(`data-error-id="${id.replace('.', '\\.')}"`));
  }

  it('answers a malformed percent-encoding in an API path with 400 request.bad_url', async () => {
    expectApi(await raw(port, `GET /api/v1/grants/%zz HTTP/1.1\nHost: x\n${admin}\nConnection: close`), 400, 'request.bad_url');
  });

  it('answers a malformed percent-encoding in a console path with 400 request.bad_url', async () => {
    expectPage(await raw(port, `GET /grants/%zz HTTP/1.1\nHost: x\n${session()}\nConnection: close`), 400, 'request.bad_url');
  });

  it('does not fail on a malformed percent-encoding before login', async () => {
    for (const p of ['/%zz', '/assets/%zz', '/login?next=%zz', '/grants/%zz']) {
      const a = await raw(port, `GET ${p} HTTP/1.1\nHost: x\nConnection: close`);
      assert.ok(a.status >= 200 && a.status < 500, `${p}: ${a.status}`);
    }
  });

  it('treats a cookie that is not valid percent-encoding as no cookie: no 500 on the console, the login page or the API', async () => {
    const bad = 'Cookie: jit_session=%E0%A4%A; jit_login_csrf=%E0%A4%A';
    const login = await raw(port, `GET /login HTTP/1.1\nHost: x\n${bad}\nConnection: close`);
    assert.equal(login.status, 200, login.headers);
    const page = await raw(port, `GET /grants HTTP/1.1\nHost: x\n${bad}\nConnection: close`);
    assert.equal(page.status, 303, page.headers);
    assert.match(page.headers, /Location: \/login/i);
    expectApi(await raw(port, `GET /api/v1/grants HTTP/1.1\nHost: x\n${bad}\nConnection: close`), 401, 'auth.required');
    const form = 'email=a%40b.c&password=x&_csrf=y';
    const post = await raw(port, `POST /login HTTP/1.1\nHost: x\n${bad}\nContent-Type: application/x-www-form-urlencoded\nContent-Length: ${form.length}\nConnection: close`, form);
    assert.equal(post.status, 403, post.headers);
    assert.match(post.body, /The form expired/);
  });

  it('answers a body that is not gzip but says so with 400 body.bad_encoding (API and login)', async () => {
    const h = `Content-Type: application/json\nContent-Encoding: gzip\nContent-Length: ${gibberish.length}\nConnection: close`;
    expectApi(await raw(port, `POST /api/v1/grants HTTP/1.1\nHost: x\n${admin}\n${h}`, gibberish), 400, 'body.bad_encoding');
    const form = Buffer.from('email=a%40b.c&password=x');
    expectPage(await raw(port, `POST /login HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\nContent-Encoding: gzip\nContent-Length: ${form.length}\nConnection: close`, form), 400, 'body.bad_encoding');
  });

  it('answers an unknown Content-Encoding with 415 body.encoding_unsupported (API and login)', async () => {
    const h = `Content-Type: application/json\nContent-Encoding: x-squeeze\nContent-Length: ${gibberish.length}\nConnection: close`;
    expectApi(await raw(port, `POST /api/v1/grants HTTP/1.1\nHost: x\n${admin}\n${h}`, gibberish), 415, 'body.encoding_unsupported');
    expectPage(await raw(port, `POST /login HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\nContent-Encoding: x-squeeze\nContent-Length: 3\nConnection: close`, 'a=b'), 415, 'body.encoding_unsupported');
  });

  it('answers a charset the parser lacks with 415 body.charset_unsupported (utf-16 on login, latin-1 on the API)', async () => {
    const latin = Buffer.from('{"a":"é"}', 'latin1');
    expectApi(await raw(port, `POST /api/v1/grants HTTP/1.1\nHost: x\n${admin}\nContent-Type: application/json; charset=iso-8859-1\nContent-Length: ${latin.length}\nConnection: close`, latin), 415, 'body.charset_unsupported');
    // JSON in UTF-16 is read (body-parser decodes any utf-*): this one then fails validation.
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"a":1}', 'utf16le')]);
    expectApi(await raw(port, `POST /api/v1/grants HTTP/1.1\nHost: x\n${admin}\nContent-Type: application/json; charset=utf-16\nContent-Length: ${utf16.length}\nConnection: close`, utf16), 400, 'validation.failed');
    const form = Buffer.from('a=b', 'utf16le');
    expectPage(await raw(port, `POST /login HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded; charset=utf-16\nContent-Length: ${form.length}\nConnection: close`, form), 415, 'body.charset_unsupported');
  });

  it('answers 101 form fields on POST /login with 400 body.too_many_fields', async () => {
    const form = Buffer.from(Array.from({ length: 101 }, (_, i) => `f${i}=x`).join('&'));
    expectPage(await raw(port, `POST /login HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\nContent-Length: ${form.length}\nConnection: close`, form), 400, 'body.too_many_fields');
  });

  it('answers a user created twice in parallel with 409 user.exists', async () => {
    const csrf = /name="_csrf" value="([^"]+)"/.exec((await web.get('/users')).text)![1]!;
    const make = () => web.request('POST', '/users', { _csrf: csrf, email: 'twice@example.com', role: 'operator', password: 'twice password 1' });
    const pages = await Promise.all([make(), make(), make()]);
    assert.deepEqual(pages.map((p) => p.status).sort(), [200, 409, 409]);
    assert.equal(await stack.server!.ctx.c.users.countDocuments({ email: 'twice@example.com' }), 1);
  });

  it('does not log a request the client aborted as an error', async () => {
    const a = await raw(port, `POST /api/v1/grants HTTP/1.1\nHost: x\n${admin}\nContent-Type: application/json\nContent-Length: 1000`, '{"operation":', { abortAfterMs: 200 });
    assert.equal(a.status, 0, 'no answer: the client left');
    const b = await raw(port, `POST /login HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\nContent-Length: 1000`, 'email=', { abortAfterMs: 200 });
    assert.equal(b.status, 0);
  });

  it('does not hold a connection whose Content-Length is larger than its body', async () => {
    const a = await raw(port, `POST /api/v1/grants HTTP/1.1\nHost: x\n${admin}\nContent-Type: application/json\nContent-Length: 1000`, '{"operation":');
    assert.ok(a.ms < 3_000 + 2_500, `held ${a.ms} ms`);
    assert.ok(a.status === 0 || a.status === 408, `status ${a.status}`);
    const b = await raw(port, `POST /login HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\nContent-Length: 1000`, 'email=');
    assert.ok(b.ms < 3_000 + 2_500, `held ${b.ms} ms`);
  });

  it('does not hold a connection whose headers never end', async () => {
    const a = await raw(port, `GET /api/v1/grants HTTP/1.1\nHost: x\nX-Slow: 1`, '', { headUnfinished: true });
    assert.ok(a.ms < 3_000 + 2_500, `held ${a.ms} ms`);
  });

  it('still serves an agent long-poll longer than the request timeout', async () => {
    const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
    const { credential } = (await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'long-poll', os: 'linux', agentVersion: 't' })).body;
    const t0 = Date.now();
    const res = await fetch(`${stack.api.url}/agent/v1/instructions?wait=6`, { headers: { authorization: `Bearer ${credential}` } });
    assert.equal(res.status, 200);
    await res.json();
    assert.ok(Date.now() - t0 >= 5_500, `answered after ${Date.now() - t0} ms`);
  });
});
