import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
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
