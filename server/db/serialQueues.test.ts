import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoNetworkError } from 'mongodb';
import { SerialQueues } from './serialQueues.ts';

describe('SerialQueues', () => {
  it('runs the steps of one key one after another, in call order', async () => {
    const locks = new SerialQueues();
    const log: string[] = [];
    const step = (name: string, ms: number) => async () => {
      log.push(`${name} start`);
      await sleep(ms);
      log.push(`${name} end`);
      return name;
    };
    const results = await Promise.all([locks.run('g', step('a', 30)), locks.run('g', step('b', 1)), locks.run('g', step('c', 1))]);
    assert.deepEqual(results, ['a', 'b', 'c']);
    assert.deepEqual(log, ['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
  });

  it('lets steps of different keys overlap', async () => {
    const locks = new SerialQueues();
    let running = 0;
    let most = 0;
    const step = async () => {
      most = Math.max(most, ++running);
      await sleep(20);
      running--;
    };
    await Promise.all([locks.run('g1', step), locks.run('g2', step)]);
    assert.equal(most, 2);
  });

  it('passes a failure to its caller only, and runs the next step', async () => {
    const locks = new SerialQueues();
    const failed = locks.run('g', async () => {
      throw new Error('boom');
    });
    const next = locks.run('g', async () => 'ran');
    await assert.rejects(failed, /boom/);
    assert.equal(await next, 'ran');
  });
});

describe('SerialQueues when the database is unreachable', () => {
  it('fails the steps queued behind a step the database did not answer, at once and with its error; later steps run', async () => {
    const locks = new SerialQueues();
    let ran = 0;
    const stuck = locks.run('g', async () => {
      await sleep(50);
      throw new MongoNetworkError('connection timed out');
    });
    const behind = Array.from({ length: 20 }, () =>
      locks.run('g', async () => {
        ran++;
        await sleep(50);
      }),
    );
    await assert.rejects(stuck, /timed out/);
    const t0 = Date.now();
    const results = await Promise.allSettled(behind);
    assert.ok(Date.now() - t0 < 40, `the queued steps waited ${Date.now() - t0} ms`);
    assert.equal(ran, 0);
    assert.ok(results.every((r) => r.status === 'rejected' && /timed out/.test(String(r.reason))));
    assert.equal(await locks.run('g', async () => 'back'), 'back');
  });

  it('keeps other failures to their caller: the next step still runs', async () => {
    const locks = new SerialQueues();
    const failed = locks.run('g', async () => {
      throw Object.assign(new Error('E11000 duplicate key'), { code: 11000 });
    });
    const next = locks.run('g', async () => 'ran');
    await assert.rejects(failed, /E11000/);
    assert.equal(await next, 'ran');
  });
});
