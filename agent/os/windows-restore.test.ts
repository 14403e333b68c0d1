/**
 * The restore timer of an elevation on Windows (windows-restore.ts): a scheduled task registered
 * at enable that takes the membership away at end + grace even if the agent is dead then. Through
 * GrantRunner and WindowsBackend on the recorded, simulated Windows (test/support/windowsSim.ts,
 * windowsSimRestore.ts): every script parses under the PowerShell grammar, the model registers
 * and runs a task only as the recorded scripts say, and runs the helper file as Task Scheduler
 * would, with the agent out of the picture.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parsePowerShell } from '../../test/support/psParse.ts';
import { elevationPlan, elevationRunner } from '../../test/support/elevationRunner.ts';
import { verifyRecording, windowsEnv, type WindowsEnv } from '../../test/support/windowsSimExec.ts';
import { boundaryInstant, splitCommandLine, TASK_POWERSHELL } from '../../test/support/windowsSimTasks.ts';
import { RESTORE_GRACE_MS } from '../timers.ts';
import { rejectsWith } from './contract.ts';
import { BACKSTOP_TASK_PATH, backstopTaskName } from './windows-backstop.ts';
import { helperArgv } from './windows-exec.ts';
import { RESTORE_FILE, RESTORE_HELPER_LINES, restoreTaskName } from './windows-restore.ts';
import { GROUP_SIDS } from './windows-scripts.ts';

const ADMINS = GROUP_SIDS.Administrators;
const HOUR = 3_600_000;

describe('elevate-account on Windows: the restore timer (recorded, simulated Task Scheduler)', () => {
  let dir: string;
  let env: WindowsEnv;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-win-restore-'));
    env = windowsEnv();
  });
  afterEach(async () => {
    await verifyRecording(env.exec);
    await rm(dir, { recursive: true, force: true });
  });

  const runner = () => elevationRunner(dir, env.backend);
  const plan = elevationPlan;
  const admins = () => env.model.members.get(ADMINS)!;
  const task = (grantId: string) => env.model.tasks.find((t) => t.path === BACKSTOP_TASK_PATH && t.name === restoreTaskName(grantId));
  const helperPath = () => path.win32.join(path.win32.dirname(env.backend.helperPath), RESTORE_FILE);

  it('is registered before the membership, as SYSTEM at end + grace with the constant helper, and removed at a normal end', async () => {
    const u = env.model.addUser('maria', '');
    const { store, r, at } = await runner();
    const p = plan('maria');
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.backstop, 'armed');
    const t = task(p.grantId)!;
    assert.ok(t, 'registered');
    assert.deepEqual([t.userId, t.logonType, t.runLevel], ['SYSTEM', 'ServiceAccount', 'Highest']);
    assert.equal(boundaryInstant(env.model, t.triggers![0]!.start), Math.ceil((Date.parse(p.endAt) + RESTORE_GRACE_MS) / 1000) * 1000);
    assert.equal(t.settings!.startWhenAvailable, true, 'a machine that was off or asleep at the end runs it when back');
    assert.equal(t.actions![0]!.execute, TASK_POWERSHELL);
    assert.deepEqual(splitCommandLine(t.actions![0]!.arguments), helperArgv(helperPath(), ['-Grant', p.grantId, '-Sid', u.sid, '-GroupSid', ADMINS, '-Logoff']));
    const ops = env.exec.calls.flatMap((c) => (c.kind === 'session' ? [c.op] : []));
    assert.ok(ops.indexOf('armRestore') < ops.lastIndexOf('elevMember'), `the task before the membership: ${ops.join(' ')}`);
    assert.ok(admins().has(u.sid));
    at(2 * HOUR);
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'removed');
    assert.equal(admins().has(u.sid), false);
    assert.equal(task(p.grantId), undefined, 'disarmed by the agent');
  });

  it('with the agent dead at the end, the task takes the membership away and logs the account off; the agent back later finds it done', async () => {
    const u = env.model.addUser('omar', '');
    u.enabled = true;
    const { store, r, at } = await runner();
    const p = plan('omar');
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    const session = env.model.spawn(u.sid);
    // The agent is dead: Task Scheduler fires the task on its own.
    const run = await env.model.runTask(BACKSTOP_TASK_PATH, restoreTaskName(p.grantId));
    assert.deepEqual([run.ran, run.exitCode], [true, 0], JSON.stringify(run));
    assert.equal(admins().has(u.sid), false, 'out of Administrators');
    assert.equal(session.alive(), false, 'logged off: the token with the Administrators SID is gone');
    assert.equal(env.model.find('omar')?.enabled, true, 'the person\'s account itself is untouched');
    at(2 * HOUR);
    await r.runDue();
    const g = store.state.grants[p.grantId]!;
    assert.equal(g.step, 'removed');
    assert.match(store.state.outbox.find((o) => o.grantId === p.grantId && o.type === 'disabled')!.detail!, /OS restore timer took it out/);
    assert.equal(store.state.outbox.some((o) => o.grantId === p.grantId && o.type === 'membership-changed'), false, 'not taken for someone else\'s change');
  });

  it('endAction notify: the task takes the membership away without a logoff', async () => {
    const u = env.model.addUser('nia', '');
    const { r } = await runner();
    const p = plan('nia', { endAction: 'notify' });
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.deepEqual(splitCommandLine(task(p.grantId)!.actions![0]!.arguments).slice(-6), ['-Grant', p.grantId, '-Sid', u.sid, '-GroupSid', ADMINS]);
    const session = env.model.spawn(u.sid);
    assert.equal((await env.model.runTask(BACKSTOP_TASK_PATH, restoreTaskName(p.grantId))).exitCode, 0);
    assert.equal(admins().has(u.sid), false);
    assert.equal(session.alive(), true);
  });

  it('is not registered for an account that was a member before: there is nothing to take away', async () => {
    const u = env.model.addUser('carol', '');
    admins().add(u.sid);
    const { store, r } = await runner();
    const p = plan('carol');
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'enabled');
    assert.equal(task(p.grantId), undefined);
    assert.equal(env.exec.sessionCalls('armRestore').length, 0);
  });

  it('back-to-back grants share the membership: the first end leaves it to the second, which takes it away at its own end', async () => {
    const u = env.model.addUser('bert', '');
    const { store, r, at } = await runner();
    const now = Date.now();
    const first = plan('bert', { endAt: new Date(now + HOUR).toISOString() });
    // Enabled in the lead time, while the first still holds the membership.
    const second = plan('bert', { startAt: new Date(now + HOUR).toISOString(), enableAt: new Date(now + HOUR - 180_000).toISOString(), endAt: new Date(now + 3 * HOUR).toISOString() });
    for (const p of [first, second]) await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    at(HOUR - 60_000);
    await r.runDue();
    assert.equal(store.state.grants[second.grantId]!.elevation?.wasMember, false, 'inherits the first grant\'s baseline, not the membership it sees');
    at(HOUR + 1000);
    await r.runDue();
    assert.equal(store.state.grants[first.grantId]!.step, 'removed');
    assert.ok(admins().has(u.sid), 'still elevated for the second grant');
    assert.equal(task(first.grantId), undefined);
    assert.ok(task(second.grantId), 'the second grant\'s timer stays');
    assert.match(store.state.outbox.find((o) => o.grantId === first.grantId && o.type === 'disabled')!.detail!, new RegExp(`grant ${second.grantId} holds the membership`));
    at(3 * HOUR + 1000);
    await r.runDue();
    assert.equal(admins().has(u.sid), false);
    assert.equal(task(second.grantId), undefined);
  });

  it('a membership still there through a nested group after ours is gone is audited, not fought', async () => {
    const u = env.model.addUser('nell', '');
    const { store, r, at } = await runner();
    const p = plan('nell');
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    // Someone makes it permanent another way: the model's Remove-LocalGroupMember leaves it in.
    const set = admins();
    const realDelete = set.delete.bind(set);
    set.delete = (sid: string) => (sid === u.sid ? false : realDelete(sid));
    at(2 * HOUR);
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'removed', 'not retried forever');
    assert.match(store.state.outbox.find((o) => o.grantId === p.grantId && o.type === 'membership-changed')!.detail!, /made a member of Administrators another way/);
    set.delete = realDelete;
  });

  it('uninstall drops every restore task and the helper, and leaves the temporary-account backstops to their own drop', async () => {
    env.model.addUser('ivy', '');
    const { r } = await runner();
    const p = plan('ivy');
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    env.model.tasks.push({ path: BACKSTOP_TASK_PATH, name: backstopTaskName('jtother'), userId: 'SYSTEM' });
    await env.backend.elevation.restoreTimers.drop();
    assert.deepEqual(env.model.tasks.map((t) => t.name), [backstopTaskName('jtother')]);
    assert.equal(env.model.files.has(helperPath().toLowerCase()), false);
  });

  it('the helper is constant text that parses, validates its parameters, and refuses a grant id a task name cannot carry', async () => {
    const text = `${RESTORE_HELPER_LINES.join('\r\n')}\r\n`;
    const tree = await parsePowerShell(text);
    assert.ok(tree.ok, tree.errors.join('; '));
    assert.ok(tree.literals.every((l) => l.kind === 'verbatim'), 'no expandable string in the helper');
    const param = RESTORE_HELPER_LINES.find((l) => l.startsWith('param('))!;
    for (const want of ['$Grant', '$Sid', '$GroupSid', '[switch]$Logoff']) assert.ok(param.includes(want), want);
    assert.ok(param.includes("'(?-i)^S-1-5-32-(544|547|545)$'"), 'only the three wizard groups');
    const timers = env.backend.elevation.restoreTimers;
    const at = new Date(Date.now() + HOUR);
    await rejectsWith(timers.arm({ grantId: "g'$(calc)", name: 'x', group: 'Administrators', at, logoff: true, membership: true, sudo: false }), 'INVALID_NAME');
    await rejectsWith(timers.disarm('a b'), 'INVALID_NAME');
    await rejectsWith(timers.arm({ grantId: 'g1', name: 'nobody', group: 'Administrators', at, logoff: true, membership: true, sudo: false }), 'NOT_FOUND');
    await rejectsWith(timers.arm({ grantId: 'g1', name: 'nobody', group: 'Administrators', at, logoff: true, membership: false, sudo: true }), 'COMMAND_FAILED');
  });
});
