/**
 * npm run chaos [-- --scenarios N --seed S [--from K]]   (--from K: start at scenario K of that seed's run)
 * npm run chaos -- --long [--scale F]   the long outages (chaos/outages.ts), about 8 minutes at scale 1
 *
 * A scenario with a violation keeps its agent's log (the path is printed); CHAOS_KEEP_LOGS=1 keeps
 * every scenario's, with a `spawned` line at each agent start.
 *
 * Runs N seeded random scenarios against one stack (FerretDB, server, SMTP) with a
 * fresh real agent per scenario, prints what was injected and every invariant
 * violation, and exits non-zero if there was any.
 */
import { parseArgs } from 'node:util';
import { ChaosStack } from './harness.ts';
import { DISABLE_BUDGET_MS, FAULT_KINDS, LATENESS_BUDGET_MS, runScenario, type FaultKind, type ScenarioResult } from './scenario.ts';

export interface ChaosSummary {
  scenarios: number;
  faults: Record<FaultKind, number>;
  violations: string[];
  maxBeyondDowntimeMs: number;
  maxRawLatenessMs: number;
  removalsMeasured: number;
  /** Worst last-usable sample after a grant's end. */
  maxUsableAfterEndMs: number;
  maxSettleMs: number;
  maxDbRecoveryMs: number;
  /** userdel runs the delete-fails faults made fail, in all. */
  deleteFailures: number;
  passwordsChecked: number;
  /** Agent exits no fault asked for, per scenario. */
  crashes: string[];
  /** Elevations whose membership we added and whose removal was measured; the worst beyond the agent's downtime. */
  elevationsMeasured: number;
  maxElevationLateMs: number;
  /** Rogue admins put in sudo during a window. */
  rogues: number;
  durationMs: number;
  results: ScenarioResult[];
}

/** `from`: the first scenario's number (default 1), to re-run one scenario of a run with its seed. */
export async function runChaos(opts: { scenarios: number; seed: number; from?: number; log?: (line: string) => void }): Promise<ChaosSummary> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const t0 = Date.now();
  const stack = await ChaosStack.start();
  const passwords = new Set<string>();
  const results: ScenarioResult[] = [];
  try {
    const first = (opts.from ?? 1) - 1;
    for (let i = first; i < first + opts.scenarios; i++) {
      const seed = (opts.seed * 1000 + i) >>> 0;
      const r = await runScenario(stack, i + 1, seed, passwords);
      results.push(r);
      const worst = Math.max(-Infinity, ...r.removals.map((x) => x.beyondDowntimeMs));
      log(
        `scenario ${r.index} seed ${seed}: ${r.faults.map((f) => `${f.kind}@${(f.at / 1000).toFixed(1)}s (${f.detail})`).join(', ')}; ` +
          `grants ${r.outcomes.join(' ')}; ${r.removals.length} removal(s), worst ${Number.isFinite(worst) ? worst : '-'} ms beyond downtime; ` +
          `${r.violations.length} violation(s); ${(r.durationMs / 1000).toFixed(1)} s`,
      );
      for (const v of r.violations) log(`  VIOLATION ${v}`);
      for (const c of r.crashes) log(`  CRASH the agent exited by itself (${c}); started again 1 s later`);
      if (r.keptLog) log(`  the agent's log: ${r.keptLog}`);
    }
  } finally {
    await stack.stop();
  }
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  for (const r of results) for (const f of r.faults) faults[f.kind]++;
  const removals = results.flatMap((r) => r.removals);
  return {
    scenarios: results.length,
    faults,
    violations: results.flatMap((r) => r.violations),
    maxBeyondDowntimeMs: Math.max(0, ...removals.map((r) => r.beyondDowntimeMs)),
    maxRawLatenessMs: Math.max(0, ...removals.map((r) => r.rawMs)),
    removalsMeasured: removals.length,
    maxUsableAfterEndMs: Math.max(0, ...results.flatMap((r) => r.usableAfterEndMs)),
    maxSettleMs: Math.max(0, ...results.map((r) => r.maxSettleMs)),
    maxDbRecoveryMs: Math.max(0, ...results.flatMap((r) => r.dbRecoveryMs)),
    deleteFailures: results.reduce((n, r) => n + r.deleteFailures, 0),
    passwordsChecked: passwords.size,
    crashes: results.flatMap((r) => r.crashes.map((c) => `scenario ${r.index} (seed ${r.seed}): ${c}`)),
    elevationsMeasured: results.reduce((n, r) => n + r.elevationLateMs.length, 0),
    maxElevationLateMs: Math.max(0, ...results.flatMap((r) => r.elevationLateMs)),
    rogues: results.reduce((n, r) => n + r.rogues, 0),
    durationMs: Date.now() - t0,
    results,
  };
}

export function formatSummary(s: ChaosSummary): string {
  const totalFaults = Object.values(s.faults).reduce((a, b) => a + b, 0);
  return [
    `scenarios: ${s.scenarios}`,
    `faults: ${totalFaults} (${Object.entries(s.faults).map(([k, n]) => `${k} ${n}`).join(', ')})`,
    `violations: ${s.violations.length}`,
    `agent crashes (exits no fault asked for; restarted 1 s later, counted as downtime): ${s.crashes.length ? s.crashes.join('; ') : 'none'}`,
    `accounts dead (locked and expired) at most ${s.maxUsableAfterEndMs} ms after their end (budget ${DISABLE_BUDGET_MS} ms, ${LATENESS_BUDGET_MS} ms with the agent down at the end; sampled every 100 ms)`,
    `userdel failures caused by delete-fails: ${s.deleteFailures} (accounts stayed dead meanwhile: see the line above)`,
    `removal lateness: max ${s.maxBeyondDowntimeMs} ms beyond the agent's downtime (budget ${LATENESS_BUDGET_MS} ms), max ${s.maxRawLatenessMs} ms raw, over ${s.removalsMeasured} removals`,
    `grant settled at most ${Math.round(s.maxSettleMs / 100) / 10} s after its end; API back at most ${s.maxDbRecoveryMs} ms after FerretDB restarts`,
    `elevations: membership out at most ${s.maxElevationLateMs} ms after the end beyond the agent's downtime (budget ${LATENESS_BUDGET_MS} ms), over ${s.elevationsMeasured}; rogue admins put in sudo during a window: ${s.rogues}, none left (else a violation above)`,
    `generated passwords checked: ${s.passwordsChecked}`,
    `took ${Math.round(s.durationMs / 1000)} s`,
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { scenarios: { type: 'string', default: '5' }, seed: { type: 'string' }, from: { type: 'string', default: '1' }, long: { type: 'boolean' }, scale: { type: 'string', default: '1' } } });
  if (values.long) {
    const { runOutages } = await import('./outages.ts');
    const figures = await runOutages({ scale: Number(values.scale) });
    const violations = figures.flatMap((f) => f.violations);
    console.log(`\nlong outages: ${figures.length - 1} phases, ${violations.length} violation(s)`);
    for (const v of violations) console.log(`VIOLATION ${v}`);
    process.exit(violations.length ? 1 : 0);
  }
  const seed = values.seed === undefined ? Math.floor(Math.random() * 1e6) : Number(values.seed);
  const scenarios = Number(values.scenarios);
  console.log(`chaos: ${scenarios} scenario(s), seed ${seed}`);
  runChaos({ scenarios, seed, from: Number(values.from) }).then(
    (s) => {
      console.log(`\n${formatSummary(s)}`);
      for (const v of s.violations) console.log(`VIOLATION ${v}`);
      process.exit(s.violations.length ? 1 : 0);
    },
    (err) => {
      console.error(err);
      process.exit(2);
    },
  );
}
