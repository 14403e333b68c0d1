import assert from 'node:assert/strict';
import { createUser } from '../../server/web/users.ts';
import { startStack, type Stack } from '../support/stack.ts';
import { ConsoleClient } from './consoleClient.ts';

/** Console logins and sessions against the real server and FerretDB. */
describe('console accounts: login lock and sessions', function () {
  this.timeout(120_000);
  let stack: Stack;

  before(async () => {
    stack = await startStack();
  });
  after(() => stack?.stop());

  const client = () => new ConsoleClient(stack.api.url);
  const user = (email: string, password: string, role: 'admin' | 'operator' | 'auditor' = 'admin') => createUser(stack.server!.ctx, { email, role, password }, 'test');

  it('locks the email after parallel wrong guesses: the right password is then refused', async () => {
    const password = 'the right password 1';
    await user('parallel@example.com', password);
    const guesses = await Promise.all(Array.from({ length: 24 }, () => client().login('parallel@example.com', 'a wrong password 1')));
    const statuses = guesses.map((g) => g.status);
    assert.ok(statuses.every((s) => s === 401 || s === 429), `statuses ${statuses}`);
    assert.ok(statuses.includes(429), `no guess was refused as locked: ${statuses}`);

    const c = client();
    const right = await c.login('PARALLEL@example.com', password);
    assert.equal(right.status, 429, 'the right password must be refused while locked');
    assert.equal(c.cookie('jit_session'), undefined);

    // Exactly maxFailedLogins (5) guesses were checked; every other one was refused unchecked.
    const events = await stack.server!.ctx.c.audit.find({ 'detail.email': 'parallel@example.com' }).toArray();
    const count = (type: string) => events.filter((e) => e.type === type).length;
    assert.equal(count('auth.login-failed'), 4);
    assert.equal(count('auth.locked'), 1);
    assert.equal(count('auth.login-refused-locked'), 24 - 5 + 1);
    assert.equal(count('auth.login'), 0);
  });

  it('changing the password signs out the other sessions and revokes the API token', async () => {
    const password = 'first password 123';
    await user('changer@example.com', password);
    const a = client();
    const b = client();
    assert.equal((await a.login('changer@example.com', password)).status, 303);
    assert.equal((await b.login('changer@example.com', password)).status, 303);
    const made = await a.post('/account/api-token', {});
    const token = /<code id="api-token">([^<]+)<\/code>/.exec(made.text)?.[1];
    assert.ok(token, 'an API token was shown');
    const asToken = () => fetch(`${stack.api.url}/api/v1/endpoints`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await asToken()).status, 200);

    const changed = await a.post('/account/password', { current: password, password: 'second password 456' });
    assert.equal(changed.status, 200, changed.text);
    assert.match(changed.text, /Password changed/);

    assert.equal((await a.get('/account')).status, 200, 'the session that changed it stays signed in');
    const other = await b.get('/account');
    assert.equal(other.status, 303);
    assert.match(other.location ?? '', /^\/login/);
    const refused = await asToken();
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: { id: string } }).error.id, 'auth.invalid');
    assert.equal(await stack.server!.ctx.c.sessions.countDocuments({ userId: (await stack.server!.ctx.c.users.findOne({ email: 'changer@example.com' }))!._id }), 1);
  });
});
