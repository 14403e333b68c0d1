import assert from 'node:assert/strict';
import { ClockWatch } from './clockWatch.ts';

describe('ClockWatch (wall-clock gaps: resume from sleep, a clock set)', () => {
  it('sees a sleep (the wall clock moves, the monotonic one does not) and a clock set back, not ordinary jitter', () => {
    let wall = 1_000_000;
    let mono = 50;
    const w = new ClockWatch(() => wall, () => mono, 5000);
    wall += 1000;
    mono += 1000;
    assert.equal(w.look(), 0, 'both clocks moved alike');
    wall += 1000 + 4000;
    mono += 1000;
    assert.equal(w.look(), 0, 'under the threshold');
    wall += 3_600_000;
    mono += 2;
    assert.equal(w.look(), 3_599_998, 'an hour asleep');
    wall -= 600_000;
    mono += 1000;
    assert.equal(w.look(), -601_000, 'set back ten minutes');
    wall += 1000;
    mono += 1000;
    assert.equal(w.look(), 0, 'each gap is reported once');
  });
});
