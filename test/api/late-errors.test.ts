import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ADMIN_TOKEN } from '../support/stack.ts';
import { OutageStack, timed } from '../support/outageStack.ts';

/**
 * A handler that fails after the request deadline answered 503: a database that could not
 * serve it is only worth a note then, but any other failure is a bug and must be logged
 * as an error, not hidden at debug level. The bug is played by making the endpoint list's
 * presence lookup throw once the (frozen, then thawed) database has answered.
 */
describe('errors after the request deadline', function () {
  this.timeout(60_000);
  let s: OutageStack;

  before(async () => {
    s = await OutageStack.start({ requestDeadlineSeconds: 1 });
    const now = new Date();
    await s.server!.ctx.c.endpoints.insertOne({ _id: randomUUID(), hostname: 'late-box', os: 'linux', agentVersion: 't', credentialHash: 'x', enrolledAt: now, lastSeenAt: now });
  });
  after(() => s?.stop());

  it('logs a failure that is not the database at error level, though the deadline answered already', async () => {
    const presence = s.server!.ctx.presence;
    const isOnline = presence.isOnline.bind(presence);
    presence.isOnline = () => {
      presence.isOnline = isOnline;
      throw new TypeError('a bug after the deadline');
    };
    const from = (await s.serverLog()).length;
    s.freezeDb();
    setTimeout(() => s.thawDb(), 1500);
    const res = await timed(`${s.api.url}/api/v1/endpoints`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(res.status, 503, res.text);
    let line: { level: number; msg: string } | undefined;
    for (let t0 = Date.now(); !line && Date.now() - t0 < 5000; await new Promise((r) => setTimeout(r, 100))) {
      line = (await s.serverLog()).slice(from).split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => JSON.stringify(l).includes('a bug after the deadline'));
    }
    assert.ok(line, 'the failure is logged');
    assert.equal(line.level, 50, JSON.stringify(line));
  });
});
