import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startStack, type Stack } from '../support/stack.ts';

/**
 * The driver's short socket timeout is for request traffic. The work a start does
 * (index builds and the data migration over a large audit log, the live-grants load)
 * may legitimately need the database longer; it must not make the server fail to start
 * after an upgrade, again and again. Played with a socket timeout far shorter than
 * those calls take on this data.
 */
describe('a start whose database work outlasts the request socket timeout', function () {
  this.timeout(300_000);
  let stack: Stack;

  before(async () => {
    stack = await startStack();
  });
  after(() => stack?.stop());

  it('still starts: migration, index builds and the live-grants load run without that limit', async () => {
    const { c } = stack.server!.ctx;
    // An audit log from before `emailKey`, large enough for its scans to take longer than the limit.
    const now = Date.now();
    for (let batch = 0; batch < 5; batch++) {
      const docs = Array.from({ length: 1000 }, (_, i) => ({ _id: randomUUID(), at: new Date(now - i), seq: now * 1000 + batch * 1000 + i, actor: 'admin', type: 'grant.requested', detail: { email: `Old.User${i}@Example.com` } }));
      await c.audit.insertMany(docs);
    }
    await c.migrations.deleteOne({ _id: 'email-key' });
    await c.audit.dropIndex('emailKey_1');
    await stack.stopServer();
    stack.config.db = { ...stack.config.db, socketTimeoutMS: 30 };
    const t0 = Date.now();
    await stack.startServer();
    console.log(`      started in ${Date.now() - t0} ms with a ${stack.config.db.socketTimeoutMS} ms socket timeout`);
    const after = stack.server!.ctx.c;
    stack.config.db = { ...stack.config.db, socketTimeoutMS: 3000 };
    assert.ok(await after.migrations.findOne({ _id: 'email-key' }), 'the migration ran to its end');
    // Read through a client with the normal limits (a restart), as the requests will.
    await stack.stopServer();
    await stack.startServer();
    const { c: again } = stack.server!.ctx;
    assert.equal(await again.audit.countDocuments({ type: 'grant.requested', emailKey: { $exists: false } }), 0);
    assert.ok((await again.audit.indexes()).some((i) => i.name === 'emailKey_1'), 'the index is built');
  });
});
