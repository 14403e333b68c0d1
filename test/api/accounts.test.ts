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
    // One per lock, however many attempts it refused (24 - 5 + 1 here): a flood writes nothing.
    assert.equal(count('auth.login-refused-locked'), 1);
    assert.equal(count('auth.login'), 0);
  });

  it('throttles the current password on the password change like a login: after 5 wrong ones the right one is refused (locked), each failure audited', async () => {
    const password = 'oracle password 1';
    await user('oracle@example.com', password);
    const c = client();
    assert.equal((await c.login('oracle@example.com', password)).status, 303);
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await c.post('/account/password', { current: `wrong guess ${i} xx`, password: 'a new password 99' })).status);
    assert.deepEqual(statuses, [400, 400, 400, 400, 429]);
    const right = await c.post('/account/password', { current: password, password: 'a new password 99' });
    assert.equal(right.status, 429, 'the right current password must be refused while locked');
    assert.match(right.text, /locked until/);
    assert.doesNotMatch(right.text, /Password changed/);
    const events = await stack.server!.ctx.c.audit.find({ 'detail.email': 'oracle@example.com', 'detail.via': 'password-change' }).toArray();
    assert.deepEqual(events.map((e) => e.type).sort(), ['auth.locked', 'auth.login-failed', 'auth.login-failed', 'auth.login-failed', 'auth.login-failed', 'auth.login-refused-locked'].sort());
    assert.ok(events.every((e) => e.actor === 'user:oracle@example.com'));
    assert.equal((await client().login('oracle@example.com', password)).status, 429, 'and the email is locked for logins too');
  });

  it('forgets a throttle row that means nothing any more when it reads it: failures older than the lock time do not add up', async () => {
    const password = 'slow guesses 123';
    await user('patient@example.com', password);
    const { c } = stack.server!.ctx;
    const long = new Date(Date.now() - 20 * 60_000);
    await c.loginThrottle.insertOne({ _id: 'patient@example.com', failures: 4, lockedUntil: null, updatedAt: long });
    assert.equal((await client().login('patient@example.com', 'a wrong password 1')).status, 401, 'a fifth failure 20 minutes after the fourth does not lock');
    assert.equal((await c.loginThrottle.findOne({ _id: 'patient@example.com' }))!.failures, 1);
    await c.loginThrottle.updateOne({ _id: 'patient@example.com' }, { $set: { lockedUntil: new Date(Date.now() - 1000), failures: 0 } });
    assert.equal((await client().login('patient@example.com', password)).status, 303);
    assert.equal(await c.loginThrottle.countDocuments({ _id: 'patient@example.com' }), 0);
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
