/**
 * One randomized scenario: a fresh agent, one to three short grants, and a few
 * faults at seeded random moments (often right around a grant's create, enable
 * or end). The sandbox's account files are sampled every 100 ms throughout, and
 * the invariants are checked once everything is healed and settled.
 */
import { copyFile, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { managedAccounts } from '../test/support/accounts.ts';
import { Sampler } from './sampler.ts';
import { passwordIn } from '../test/support/atRest.ts';
import { grantBody } from '../test/support/stack.ts';
import { checkNoPasswords, LIBFAKETIME, type ChaosStack, type Interval } from './harness.ts';
import { addPerson, addRogueDuring, checkElevations, type Person, type Rogue } from './elevation.ts';
import { infra, overlap, prng, sleep } from './util.ts';
import { until } from '../test/support/accounts.ts';

export const FAULT_KINDS = ['agent-kill', 'lose-report', 'server-restart', 'db-down', 'smtp-down', 'redeliver', 'clock-jump', 'delete-fails', 'rogue-admin'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Grant states the checker accepts as settled (revocation-failed only with a reason). */
const SETTLED = ['removed', 'revoked', 'failed', 'revocation-failed'];
/** Removal may lag the end by the agent's downtime plus this. */
export const LATENESS_BUDGET_MS = 2000;
/**
 * The account must be dead (locked and expired, or gone) this soon after its end, even while
 * its deletion keeps failing. When the agent was down across the end, the OS backstop timer
 * does it, within LATENESS_BUDGET_MS (it checks the clock every second).
 */
export const DISABLE_BUDGET_MS = 1000;

export interface ScenarioResult {
  index: number;
  seed: number;
  faults: { kind: FaultKind; at: number; detail: string }[];
  violations: string[];
  /** Per grant that had an account: removal time minus end, raw and minus the agent's downtime after the end. */
  removals: { grantId: string; username: string; rawMs: number; beyondDowntimeMs: number }[];
  /** Per grant that had an account: last sample in which it could log in, minus its end (≤ 0: dead by the end). */
  usableAfterEndMs: number[];
  /** userdel runs the delete-fails faults made fail. */
  deleteFailures: number;
  /** Worst time from a grant's end to its settled state. */
  maxSettleMs: number;
  /** Time for the API to answer again after FerretDB came back (driver reconnect). */
  dbRecoveryMs: number[];
  /** Per elevation we added: time in sudo after its end beyond the agent's downtime. */
  elevationLateMs: number[];
  /** Rogue admins added during a window. */
  rogues: number;
  /** Final state and email delivery status per grant. */
  outcomes: string[];
  /** Where the agent's log was copied, when the scenario had a violation or a crash. */
  keptLog?: string;
  /** Agent exits no fault asked for (restarted like its service; the time counts as downtime). */
  crashes: string[];
  durationMs: number;
}

export async function runScenario(stack: ChaosStack, index: number, seed: number, passwords: Set<string>): Promise<ScenarioResult> {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const between = (a: number, b: number) => a + rnd() * (b - a);
  const t0 = Date.now();
  const result: ScenarioResult = { index, seed, faults: [], violations: [], removals: [], usableAfterEndMs: [], elevationLateMs: [], rogues: 0, deleteFailures: 0, maxSettleMs: 0, dbRecoveryMs: [], outcomes: [], crashes: [], durationMs: 0 };
  const violation = (msg: string) => result.violations.push(`scenario ${index} (seed ${seed}): ${msg}`);

  // Decide everything up front, so a seed always means the same plan.
  const nGrants = 1 + Math.floor(rnd() * 3);
  const times = () => ({ startIn: Math.round(between(1, 4) * 10) / 10, seconds: Math.round(between(3, 6) * 10) / 10, serverSideSmtp: rnd() < 0.4 });
  type GrantPlan = ReturnType<typeof times> & { elevate: { name: string; wasMember: boolean; endAction: 'logoff' | 'notify' } | null };
  const grantPlans: GrantPlan[] = Array.from({ length: nGrants }, () => ({ ...times(), elevate: null }));
  // Half the scenarios also elevate a person's own account (a quarter of them already in sudo).
  if (rnd() < 0.5) grantPlans.push({ ...times(), elevate: { name: `person${index}`, wasMember: rnd() < 0.25, endAction: rnd() < 0.5 ? 'logoff' : 'notify' } });
  const nFaults = 2 + Math.floor(rnd() * 2);
  const faultPlans = Array.from({ length: nFaults }, () => {
    // Without libfaketime there is no honest way to move only the agent's clock: kill it instead.
    const drawn = pick(FAULT_KINDS);
    const kind: FaultKind = drawn === 'clock-jump' && !LIBFAKETIME ? 'agent-kill' : drawn;
    const drawnGrant = grantPlans[Math.floor(rnd() * grantPlans.length)]!;
    // A rogue admin needs a window it can be seen in: not an elevation of someone already in sudo.
    const g = kind === 'rogue-admin' && drawnGrant.elevate?.wasMember ? grantPlans[0]! : drawnGrant;
    const lead = stack.config.leadTimeSeconds;
    // Moments that matter: mid-create, around enable, around and just after the end (mid-delete).
    const anchor = pick(['create', 'enable', 'end', 'end', 'any'] as const);
    const at =
      anchor === 'create' ? between(0, 0.8) :
      anchor === 'enable' ? g.startIn - lead + between(-0.3, 0.3) :
      anchor === 'end' ? g.startIn + g.seconds + between(-0.3, 0.4) :
      between(0, g.startIn + g.seconds);
    return { kind, atS: Math.max(0, at), anchor, downS: between(0.5, 3.5), jumpS: Math.round(between(2, 8)), grantIdx: grantPlans.indexOf(g) };
  });

  const agent = await stack.enrollAgent();
  const people: Person[] = [];
  for (const p of grantPlans) if (p.elevate) people.push(await addPerson(agent.root, p.elevate.name, p.elevate.wasMember));
  const baseline = new Set((await readFile(path.join(agent.root, 'etc/passwd'), 'utf8')).split('\n').map((l) => l.split(':')[0]!).filter(Boolean));
  if (faultPlans.some((f) => f.kind === 'clock-jump')) await agent.useFakeTime();
  const sampler = new Sampler(agent.root, baseline);
  agent.start();
  // An elevation is only sent to an agent whose inventory says it can (and lists the account).
  if (people.length) {
    const listed = async () => (await stack.server!.ctx.c.endpoints.findOne({ _id: agent.endpointId }))?.accounts?.some((a) => a.name === people[0]!.name) ?? false;
    await until(listed, 20_000, 'the agent inventory');
  }

  const grants: { id: string; endAt: number; enableAt: number }[] = [];
  const tg = Date.now();
  for (const p of grantPlans) {
    const op = p.elevate ? { operation: 'elevate-account', account: p.elevate.name, endAction: p.elevate.endAction } : {};
    const res = await stack.api.request('POST', '/api/v1/grants', grantBody(agent.endpointId, p.startIn, p.seconds, { email: `chaos${index}-${grants.length}@example.com`, serverSideSmtp: p.serverSideSmtp, ...op }));
    if (res.status !== 201) throw new Error(`grant not created: ${res.status} ${JSON.stringify(res.body)}`);
    const g = res.body.grants[0];
    grants.push({ id: g.id, endAt: Date.parse(g.endAt), enableAt: Date.parse(g.enableAt) });
  }

  const record = (kind: FaultKind, detail: string) => result.faults.push({ kind, at: Date.now() - tg, detail });
  const rogues: Rogue[] = [];
  const faultTasks = faultPlans.map(async (f, fi) => {
    await sleep(tg + f.atS * 1000 - Date.now());
    const grant = grants[f.grantIdx]!;
    switch (f.kind) {
      case 'agent-kill':
        await agent.kill();
        record(f.kind, `${f.anchor}, down ${f.downS.toFixed(1)} s`);
        await sleep(f.downS * 1000);
        agent.start();
        return;
      case 'lose-report': {
        // Kill right after the agent's next visible step, before its report can leave.
        const saw = await sampler.nextChange(4000);
        await agent.kill();
        record(f.kind, `${saw ? 'right after a step' : 'no step seen in 4 s'}, down ${f.downS.toFixed(1)} s`);
        await sleep(f.downS * 1000);
        agent.start();
        return;
      }
      case 'server-restart':
        await infra(async () => {
          await stack.stopServer();
          record(f.kind, `${f.anchor}, down ${f.downS.toFixed(1)} s`);
          await sleep(f.downS * 1000);
          await stack.startServer();
        });
        return;
      case 'db-down':
        await infra(async () => {
          await stack.stopDb();
          record(f.kind, `${f.anchor}, down ${f.downS.toFixed(1)} s`);
          await sleep(f.downS * 1000);
          await stack.startDb();
          const up = Date.now();
          // The server keeps its MongoClient: it must find the database again by itself.
          for (;;) {
            const ok = await stack.api.request('GET', `/api/v1/grants/${grant.id}`).then((r) => r.status === 200, () => false);
            if (ok) break;
            if (Date.now() - up > 30_000) {
              violation('the server did not reconnect to the database within 30 s');
              break;
            }
            await sleep(100);
          }
          result.dbRecoveryMs.push(Date.now() - up);
        });
        return;
      case 'smtp-down':
        await stack.smtp.down();
        record(f.kind, `${f.anchor}, down ${f.downS.toFixed(1)} s`);
        await sleep(f.downS * 1000);
        await stack.smtp.up();
        return;
      case 'redeliver':
        await infra(async () => {
          const ctx = stack.server!.ctx;
          const r = await ctx.c.instructions.updateMany({ grantId: grant.id, ackedAt: { $ne: null } }, { $set: { ackedAt: null } });
          ctx.hub.notify(agent.endpointId);
          record(f.kind, `${f.anchor}, ${r.modifiedCount} instruction(s) un-acked`);
        });
        return;
      case 'clock-jump':
        await agent.jumpClock(f.jumpS);
        record(f.kind, `${f.anchor}, +${f.jumpS} s (agent clock now +${agent.clockOffset} s)`);
        return;
      case 'rogue-admin': {
        const plan = grantPlans[f.grantIdx]!;
        const username = async () => plan.elevate?.name ?? (await stack.api.grant(grant.id).catch(() => null))?.username ?? undefined;
        // By the fault's place in the plan: two rogue faults of one scenario may run at once.
        const name = `rogue${index}x${fi}`;
        // Until shortly before the end as the agent's clock sees it.
        const r = await addRogueDuring(agent.root, sampler, { username, elevation: !!plan.elevate }, name, grant.endAt - 300 - agent.clockOffset * 1000);
        if (r) rogues.push(r);
        record(f.kind, r ? `${name} put in sudo during the window of ${r.during}` : 'skipped: the grant was never seen live before its end');
        return;
      }
      case 'delete-fails': {
        // From just before the chosen grant's end: its deletion (and any other in the meantime) fails N times.
        const n = 1 + Math.floor(f.downS);
        // 0.3 s before the end as the agent's clock sees it (a jumped clock ends grants early).
        await sleep(grant.endAt - 300 - agent.clockOffset * 1000 - Date.now());
        await agent.failDeletes(n);
        record(f.kind, `userdel fails ${n} time(s) from 0.3 s before the end of grant ${grants.indexOf(grant) + 1}`);
        return;
      }
    }
  });
  await Promise.all(faultTasks);
  // Everything healed.
  await infra(async () => {
    await stack.startDb();
    if (!stack.server) await stack.startServer();
  });
  await stack.smtp.up();
  agent.start();
  const healedAt = Date.now();

  // (3) Every grant settles, with a reason where one is due, within a bound.
  const maxEnd = Math.max(...grants.map((g) => g.endAt));
  // + 30 s: after a server start, deletion checks wait for the agents to report (scheduler/startupHold.ts).
  const bound = Math.max(healedAt, maxEnd) + (stack.config.verifyGraceSeconds + 30) * 1000;
  const finalDocs = new Map<string, any>();
  for (const g of grants) {
    let doc: any;
    for (;;) {
      doc = await stack.api.grant(g.id).catch(() => null);
      const settled = doc && (['removed', 'revoked', 'failed'].includes(doc.state) || (doc.state === 'revocation-failed' && Date.now() > bound - 5000));
      if (settled || Date.now() > bound) break;
      await sleep(200);
    }
    finalDocs.set(g.id, doc);
    result.outcomes.push(doc?.operation === 'elevate-account' ? `${doc?.state} (elevation)` : `${doc?.state}/mail ${doc?.emailDelivery?.status}`);
    if (!doc || !SETTLED.includes(doc.state)) {
      violation(`grant ${g.id} did not settle within ${Math.round((bound - g.endAt) / 1000)} s of its end: state ${doc?.state}, timeline ${doc?.timeline?.map((e: any) => e.type).join(' → ')}`);
      continue;
    }
    if ((doc.state === 'failed' || doc.state === 'revocation-failed') && !doc.reason) violation(`grant ${g.id} is ${doc.state} without a reason`);
    const settledAt = Date.parse(doc.updatedAt);
    result.maxSettleMs = Math.max(result.maxSettleMs, settledAt - g.endAt);
  }
  // Let the agent finish what it does after the last report (a removal in flight).
  await sleep(500);
  await sampler.stop();
  const settledAt = Date.now();

  // (2) No managed account without a live grant.
  const { c } = stack.server!.ctx;
  const liveNames = new Map((await c.grants.find({ endpointId: agent.endpointId }).toArray()).map((g: any) => [g.username, g.state]));
  for (const m of await managedAccounts(agent.root)) {
    const state = liveNames.get(m);
    if (!state || ['removed', 'revoked', 'failed'].includes(state)) violation(`managed account ${m} exists with ${state ? `its grant ${state}` : 'no grant'}`);
  }

  // (1) Removal lateness beyond the agent's downtime.
  const downs = agent.downIntervals(settledAt).filter((i) => i.from > t0);
  const deleteFailures = await agent.deleteFailures();
  for (const g of grants) {
    const doc = finalDocs.get(g.id);
    const username: string | undefined = doc?.username;
    if (!username || !sampler.lastSeen.has(username)) continue;
    const last = sampler.lastSeen.get(username)!;
    const gone = sampler.goneAt.get(username) ?? settledAt;
    if (last < g.endAt) {
      result.removals.push({ grantId: g.id, username, rawMs: gone - g.endAt, beyondDowntimeMs: Math.min(0, gone - g.endAt) });
      continue;
    }
    const raw = gone - g.endAt;
    const beyond = raw - overlap(downs, g.endAt, gone);
    // (5) Dead by its end, even while deletion fails, and even with the agent down across the end
    // (the OS backstop timer): no sample later than end + budget may show it usable.
    const alive = sampler.lastAlive.get(username);
    // Down at the end, or killed just after it before the disable was done: the backstop's budget.
    const downAtEnd = downs.some((i) => i.from <= g.endAt + DISABLE_BUDGET_MS && i.to >= g.endAt);
    if (alive !== undefined) result.usableAfterEndMs.push(alive - g.endAt);
    if (alive !== undefined && alive - g.endAt > (downAtEnd ? LATENESS_BUDGET_MS : DISABLE_BUDGET_MS)) {
      violation(`account ${username} (grant ${g.id}) could still log in ${alive - g.endAt} ms after its end (agent ${downAtEnd ? 'down' : 'up'} at the end)`);
    }
    // A deletion that ran into a userdel made to fail is late by design; (5) and (3) still hold.
    // By name: an agent clock set ahead may have tried (and failed) before the end.
    if (deleteFailures.some((f) => f.account === username)) continue;
    result.removals.push({ grantId: g.id, username, rawMs: raw, beyondDowntimeMs: beyond });
    if (beyond > LATENESS_BUDGET_MS) violation(`account ${username} (grant ${g.id}) removed ${raw} ms after its end, ${beyond} ms beyond the agent's downtime`);
  }
  result.deleteFailures = deleteFailures.length;

  // (6) and (7): elevations restored on time, rogue admins out (chaos/elevation.ts).
  const elevations = grantPlans.flatMap((p, i) => (p.elevate ? [{ person: people.find((x) => x.name === p.elevate!.name)!, endAt: grants[i]!.endAt, state: finalDocs.get(grants[i]!.id)?.state ?? '?' }] : []));
  const checked = await checkElevations(agent.root, sampler, elevations, rogues, downs, LATENESS_BUDGET_MS);
  for (const v of checked.violations) violation(v);
  result.elevationLateMs = checked.lateMs;
  result.rogues = rogues.length;

  // (4) No generated password anywhere at rest.
  for (const m of stack.smtp.messages) {
    const p = passwordIn(m.text);
    if (p) passwords.add(p);
  }
  await checkNoPasswords(stack, [agent], passwords, violation);

  result.crashes = agent.crashes.map((c) => `${c.signal ?? `exit code ${c.code}`} at ${((c.at - t0) / 1000).toFixed(1)} s`);
  if (result.violations.length || result.crashes.length || process.env.CHAOS_KEEP_LOGS) {
    // The agent's own account of the scenario, for whoever looks into it (the sandbox goes next).
    const kept = path.join(os.tmpdir(), `chaos-${seed}-agent.log`);
    await copyFile(agent.logFile, kept).catch(() => {});
    result.keptLog = kept;
  }
  await agent.cleanup();
  result.durationMs = Date.now() - t0;
  return result;
}
