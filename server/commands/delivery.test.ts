/**
 * Where a grant's credentials email stands, on a real (embedded FerretDB) database.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { startFerretDB, type EmbeddedDb } from '../db/ferret.ts';
import { collections, type Collections, type GrantDoc } from '../store/collections.ts';
import { timeline } from '../store/audit.ts';
import { closeDeliveryOnEnd, NOT_SENT_REASON, recordDelivery } from './delivery.ts';

describe('credentials email delivery state', function () {
  this.timeout(60_000);
  let dir: string;
  let db: EmbeddedDb;
  let client: MongoClient;
  let c: Collections;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-delivery-'));
    db = await startFerretDB({ dataDir: path.join(dir, 'db') });
    client = await MongoClient.connect(`${db.uri.replace(/\/?$/, '/')}jit`);
    c = collections(client.db());
  });
  after(async () => {
    await client?.close();
    await db?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function grant(over: Partial<GrantDoc> = {}): Promise<GrantDoc> {
    const now = new Date();
    const g: GrantDoc = {
      _id: randomUUID(), requestId: randomUUID(), operation: 'temporary-access', email: 'jane@example.com', endpointId: 'ep-1', hostname: 'web-01',
      group: 'Administrators', startAt: now, enableAt: now, endAt: new Date(now.getTime() + 60_000), serverSideSmtp: false, state: 'removed',
      revokeRequested: false, delivery: { status: 'pending', attempts: 0 }, createdBy: 'admin', createdAt: now, updatedAt: now, ...over,
    };
    await c.grants.insertOne(g);
    return g;
  }
  const stored = async (id: string) => (await c.grants.findOne({ _id: id }))!.delivery;

  it('closes a still pending email as not-sent, with the reason, once, and audits it', async () => {
    const g = await grant({ delivery: { status: 'pending', attempts: 2, lastError: 'connection_failed: could not connect' } });
    assert.equal(await closeDeliveryOnEnd({ c }, g._id), true);
    const d = await stored(g._id);
    assert.equal(d.status, 'not-sent');
    assert.equal(d.attempts, 2);
    assert.equal(d.lastError, NOT_SENT_REASON);
    assert.match(NOT_SENT_REASON, /access ended before the credentials were delivered/);
    assert.equal(await closeDeliveryOnEnd({ c }, g._id), false, 'a second call changes nothing');
    const events = (await timeline(c, g._id)).filter((e) => e.type === 'email.not-sent');
    assert.equal(events.length, 1);
    assert.deepEqual(events[0]!.detail, { reason: NOT_SENT_REASON, state: 'removed', attempts: 2 });
  });

  it('says why when the grant failed before anything was sent', async () => {
    const g = await grant({ state: 'failed' });
    await closeDeliveryOnEnd({ c }, g._id);
    assert.match((await stored(g._id)).lastError ?? '', /failed before the credentials were delivered/);
  });

  it('leaves a sent or failed email as it is, and an unknown grant alone', async () => {
    const sent = await grant({ delivery: { status: 'sent', attempts: 1, sentAt: new Date() } });
    const failed = await grant({ delivery: { status: 'failed', attempts: 3, lastError: 'auth_failed: x' } });
    assert.equal(await closeDeliveryOnEnd({ c }, sent._id), false);
    assert.equal(await closeDeliveryOnEnd({ c }, failed._id), false);
    assert.equal(await closeDeliveryOnEnd({ c }, 'no-such-grant'), false);
    assert.equal((await stored(sent._id)).status, 'sent');
    assert.deepEqual(await stored(failed._id), { status: 'failed', attempts: 3, lastError: 'auth_failed: x' });
  });

  it('lets a late report of a sent email win, but not a late failure', async () => {
    const late = await grant();
    await closeDeliveryOnEnd({ c }, late._id);
    await recordDelivery({ c }, late._id, { ok: false, error: 'timeout: no answer' }, 'endpoint', 'agent:ep-1');
    const d = await stored(late._id);
    assert.equal(d.status, 'not-sent', 'the attempt is counted, the outcome stays');
    assert.equal(d.attempts, 1);
    await recordDelivery({ c }, late._id, { ok: true }, 'endpoint', 'agent:ep-1');
    assert.equal((await stored(late._id)).status, 'sent', 'it did go out after all');
  });
});
