import assert from 'node:assert/strict';
import { startStack, type Stack } from '../support/stack.ts';

/** Who the server says is online, and whose requests it accepts, without a database write per poll. */
describe('agent channel: presence and authentication', function () {
  this.timeout(120_000);
  let stack: Stack;
  let endpointId: string;
  let credential: string;

  before(async () => {
    stack = await startStack();
    const { body } = await stack.api.request('POST', '/api/v1/enrollment-tokens');
    const res = await stack.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'presence-box', os: 'linux', agentVersion: 't' });
    ({ endpointId, credential } = res.body);
  });
  after(() => stack?.stop());

  const asAgent = (cred: string) => fetch(`${stack.api.url}/agent/v1/settings`, { headers: { authorization: `Bearer ${cred}` } });
  const stored = async () => (await stack.server!.ctx.c.endpoints.findOne({ _id: endpointId }))!.lastSeenAt.getTime();
  const listed = async () => (await stack.api.request('GET', '/api/v1/endpoints')).body.endpoints.find((e: { id: string }) => e.id === endpointId);

  it('shows the last request at once but stores it only at shutdown (or every few minutes)', async () => {
    const enrolledAt = await stored();
    await new Promise((r) => setTimeout(r, 50));
    const before = Date.now();
    assert.equal((await asAgent(credential)).status, 200);
    const shown = await listed();
    assert.ok(Date.parse(shown.lastSeenAt) >= before, `listed ${shown.lastSeenAt}, request at ${new Date(before).toISOString()}`);
    assert.equal(shown.online, true);
    assert.equal(await stored(), enrolledAt, 'a request must not cost a database write');

    await stack.stopServer();
    await stack.startServer();
    assert.ok((await stored()) >= before, 'the shutdown stores the last-seen time');
    assert.ok(Date.parse((await listed()).lastSeenAt) >= before);
  });

  it('refuses a known endpoint id with a wrong secret, also once the endpoint is cached', async () => {
    assert.equal((await asAgent(credential)).status, 200);
    const wrong = `${endpointId}.${'x'.repeat(40)}`;
    const res = await asAgent(wrong);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { id: string } }).error.id, 'auth.invalid');
  });
});
