import assert from 'node:assert/strict';
import { formatSummary, runChaos } from '../../chaos/run.ts';

/**
 * A short, fixed-seed chaos run (see chaos/): real FerretDB, server, SMTP and agent
 * processes, with agent kills, server and database restarts, SMTP outages,
 * redeliveries and agent clock jumps. Fails on any invariant violation.
 */
describe('chaos: seeded fault injection against the real stack', function () {
  this.timeout(300_000);

  it('keeps every invariant through 4 seeded scenarios', async () => {
    const lines: string[] = [];
    const summary = await runChaos({ scenarios: 4, seed: 20261121, log: (l) => lines.push(l) });
    assert.equal(summary.scenarios, 4);
    assert.ok(Object.values(summary.faults).reduce((a, b) => a + b, 0) >= 8, 'faults were injected');
    const detail = `${lines.join('\n')}\n${formatSummary(summary)}`;
    assert.deepEqual(summary.violations, [], detail);
    assert.deepEqual(summary.crashes, [], `the agent exited by itself\n${detail}`);
    // The invariants were really exercised, not vacuously true.
    assert.ok(summary.passwordsChecked > 0, `no generated password was searched for at rest\n${detail}`);
    assert.ok(summary.removalsMeasured > 0, `no removal lateness was measured\n${detail}`);
  });
});
