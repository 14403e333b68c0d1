/**
 * elevate-account and the rogue-admin guard through GrantRunner on real accounts in a sandbox
 * root (LinuxBackend: shadow-utils with --prefix, sudo's visudo), with real processes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Plan } from '../protocol/messages.ts';
import { runAs, shadowOf, until } from '../test/support/accounts.ts';
import { GrantRunner } from './accounts.ts';
import { run } from './os/exec.ts';
import { LinuxBackend } from './os/linux.ts';
import { makeSandboxRoot } from './os/sandboxRoot.ts';
import type { CredentialSink } from './sink.ts';
import { StateStore } from './state.ts';

const canRun = process.platform === 'linux' && process.getuid?.() === 0;

(canRun ? describe : describe.skip)('elevate-account on a sandbox root', function () {
  this.timeout(30_000);
  let root: string;
  let cleanup: () => Promise<void>;
  let dir: string;
  let linux: LinuxBackend;
  let ended: string[];
  const uidMin = 2_000_000 + randomInt(100) * 1000;
  let nextUid = uidMin + 500;
  const kill: (() => void)[] = [];

  beforeEach(async () => {
    ({ root, cleanup } = await makeSandboxRoot());
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-elevate-'));
    linux = new LinuxBackend({ root, uidMin, uidMax: uidMin + 999 });
    ended = [];
  });
  afterEach(async () => {
    for (const k of kill.splice(0)) k();
    await cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  /** An existing account, as a person's own would be (not ours: no marker). */
  async function person(name: string, groups: string[] = []): Promise<number> {
    const uid = nextUid++;
    await run('useradd', ['--prefix', root, '-u', String(uid), '-m', '-s', '/bin/bash', ...(groups.length ? ['-G', groups.join(',')] : []), '--', name]);
    return uid;
  }
  const groupMembers = async (g: string) => ((await readFile(path.join(root, 'etc', 'group'), 'utf8')).split('\n').find((l) => l.startsWith(`${g}:`)) ?? '').split(':')[3]?.split(',').filter(Boolean) ?? [];

  const runner = async (now: () => number = Date.now) => {
    const store = await StateStore.create(path.join(dir, 'state.json'), { version: 1, serverUrl: 'http://x', endpointId: 'e', credential: 'c', hostname: 'h', sandboxRoot: root, grants: {}, seenInstructions: [], outbox: [] });
    const sink: CredentialSink = { deliver: () => {}, isActive: () => false, cancel: () => {}, ended: async (r) => void ended.push(r.plan.grantId), elevated: async () => {} };
    return { store, r: new GrantRunner(store, linux, sink, pino({ level: 'silent' }), now) };
  };
  const plan = (account: string, startIn: number, seconds: number, extra: Partial<Plan> = {}) => {
    const start = Date.now() + startIn * 1000;
    return Plan.parse({
      grantId: randomUUID(), operation: 'elevate-account', account, group: 'Administrators', email: 'a@example.com',
      startAt: new Date(start).toISOString(), enableAt: new Date(start).toISOString(), endAt: new Date(start + seconds * 1000).toISOString(), serverSideSmtp: false, ...extra,
    });
  };
  const reports = (store: StateStore, grantId: string) => store.state.outbox.filter((o) => o.grantId === grantId);

  it('puts the account in sudo at enable and takes it out at the end, ending its processes and a root shell opened from its session', async () => {
    const uid = await person('alice');
    const { store, r } = await runner();
    const p = plan('alice', 0, 2);
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.deepEqual(await groupMembers('sudo'), ['alice']);
    assert.equal(store.state.grants[p.grantId]!.elevation?.wasMember, false, 'baseline on disk');
    const own = await runAs(uid);
    kill.push(own.kill);
    // A root process opened from alice's login session (what sudo -s leaves: loginuid kept).
    const rootShell = spawn('sh', ['-c', `echo ${uid} > /proc/self/loginuid && exec sleep 300`], { stdio: 'ignore' });
    kill.push(() => rootShell.kill('SIGKILL'));
    await until(async () => (await readFile(`/proc/${rootShell.pid}/loginuid`, 'utf8').catch(() => '')).trim() === String(uid), 2000, 'loginuid set');
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 5000, 'elevation ended');
    assert.deepEqual(await groupMembers('sudo'), []);
    assert.equal(own.alive(), false, 'the account’s own process was ended (logoff)');
    await until(() => rootShell.exitCode !== null || rootShell.signalCode !== null, 2000, 'root shell ended');
    assert.deepEqual(reports(store, p.grantId).map((o) => o.type), ['created', 'enabled', 'disabled', 'logged-off', 'removed']);
    assert.match(reports(store, p.grantId)[2]!.detail!, /taken out of Administrators/);
    assert.deepEqual(ended, [p.grantId], 'the user is told');
    assert.ok((await readFile(path.join(root, 'etc', 'passwd'), 'utf8')).includes('alice:'), 'the account itself is kept');
  });

  it('leaves a membership that predates the grant, and says so', async () => {
    await person('bob', ['sudo']);
    const { store, r } = await runner();
    const p = plan('bob', 0, 1);
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 5000, 'ended');
    assert.deepEqual(await groupMembers('sudo'), ['bob']);
    assert.match(reports(store, p.grantId).find((o) => o.type === 'enabled')!.detail!, /was a member before: yes/);
    assert.match(reports(store, p.grantId).find((o) => o.type === 'disabled')!.detail!, /left in Administrators/);
  });

  it('notify: keeps the account’s own processes but ends the root ones started from its session', async () => {
    const uid = await person('carol');
    const { store, r } = await runner();
    const p = plan('carol', 0, 1, { endAction: 'notify' });
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    const own = await runAs(uid);
    kill.push(own.kill);
    const rootShell = spawn('sh', ['-c', `echo ${uid} > /proc/self/loginuid && exec sleep 300`], { stdio: 'ignore' });
    kill.push(() => rootShell.kill('SIGKILL'));
    await until(async () => (await readFile(`/proc/${rootShell.pid}/loginuid`, 'utf8').catch(() => '')).trim() === String(uid), 2000, 'loginuid set');
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 5000, 'ended');
    await until(() => rootShell.exitCode !== null || rootShell.signalCode !== null, 2000, 'root shell ended');
    assert.equal(own.alive(), true, 'notify leaves the session');
  });

  it('without a login uid, finds the root shell by its parent: the sudo its user ran (real uid kept)', async () => {
    const uid = await person('kim');
    const { store, r } = await runner();
    // logoff: the account's own processes (the sudo among them) end too, after the root shell.
    const p = plan('kim', 0, 1);
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    // "sudo" (real uid kim, effective root; bash -p keeps that) forks a shell that runs as root entirely.
    const sudo = spawn('setpriv', [`--ruid=${uid}`, '--euid=0', '--', 'bash', '-p', '-c', 'setpriv --ruid=0 -- sleep 300; true'], { stdio: 'ignore' });
    kill.push(() => sudo.kill('SIGKILL'));
    const child = async () => (await readFile(`/proc/${sudo.pid}/task/${sudo.pid}/children`, 'utf8').catch(() => '')).trim();
    await until(async () => (await child()) !== '', 2000, 'the root shell started');
    const rootPid = Number((await child()).split(' ')[0]);
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 5000, 'ended');
    await until(async () => !(await readFile(`/proc/${rootPid}/status`, 'utf8').then((t) => !/^State:\s+[ZX]/m.test(t), () => false)), 2000, 'root shell ended');
  });

  it('fails with the reason, changing nothing, for a missing, a system or one of our own accounts', async () => {
    await run('useradd', ['--prefix', root, '-r', '-u', '998', '-s', '/usr/sbin/nologin', '--', 'svc']);
    await linux.createDisabled({ name: 'ours1', group: 'Users', grantId: 'g1', expiresAt: new Date(Date.now() + 60_000), uid: uidMin + 1 }, 'a-long-enough-password-1');
    const { store, r } = await runner();
    const cases: [string, RegExp][] = [['nobody1', /no local account nobody1/], ['svc', /system account/], ['ours1', /temporary account of this service/]];
    for (const [account, why] of cases) {
      const p = plan(account, 0, 60);
      await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
      await r.runDue();
      assert.equal(store.state.grants[p.grantId]!.step, 'failed');
      assert.match(reports(store, p.grantId).find((o) => o.type === 'failed')!.detail!, why);
    }
    assert.deepEqual(await groupMembers('sudo'), []);
  });

  it('an agent down across the end takes the membership away first thing at start, with no server', async () => {
    await person('dave');
    const { store, r } = await runner();
    const p = plan('dave', 0, 2);
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.deepEqual(await groupMembers('sudo'), ['dave']);
    // The agent dies here; it starts again after the end, from its state file.
    await new Promise((res) => setTimeout(res, 2100));
    const again = new GrantRunner(await StateStore.load(store.file), linux, { deliver: () => {}, isActive: () => false, cancel: () => {}, ended: async () => {}, elevated: async () => {} }, pino({ level: 'silent' }));
    await again.reconcile();
    await again.runDue();
    assert.deepEqual(await groupMembers('sudo'), []);
  });

  it('a wall clock that jumps past the end takes the membership away on the next pass', async () => {
    await person('erin');
    let offset = 0;
    const { store, r } = await runner(() => Date.now() + offset);
    const p = plan('erin', 0, 3600);
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.deepEqual(await groupMembers('sudo'), ['erin']);
    offset = 2 * 3600_000;
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'removed');
    assert.deepEqual(await groupMembers('sudo'), []);
  });

  it('a handover plan carries the baseline: a membership an earlier agent added is taken away, not kept as the account’s own', async () => {
    await person('lena', ['sudo']); // in sudo because the agent before the re-enrollment put her there
    const { store, r } = await runner();
    const p = plan('lena', 0, 1, { wasMember: false });
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.elevation?.wasMember, false);
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 5000, 'ended');
    assert.deepEqual(await groupMembers('sudo'), []);
  });

  it('an enable that got half-way (in sudo, the sudoers drop-in failed) is taken back at the end all the same', async () => {
    await person('mona');
    const { store, r } = await runner();
    // No /etc/sudoers.d in this root: writing the drop-in fails after the membership was added.
    const p = plan('mona', 0, 2, { passwordlessSudo: true });
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'created');
    assert.deepEqual(await groupMembers('sudo'), ['mona'], 'the membership went in before the failure');
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 6000, 'ended');
    assert.deepEqual(await groupMembers('sudo'), []);
  });

  it('passwordless sudo: a drop-in that visudo accepts, with our marker, gone at the end', async () => {
    await person('frank');
    const { store, r } = await runner();
    const p = plan('frank', 0, 2, { passwordlessSudo: true });
    const { mkdir } = await import('node:fs/promises');
    await mkdir(path.join(root, 'etc', 'sudoers.d'), { recursive: true });
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    const files = await readdir(path.join(root, 'etc', 'sudoers.d'));
    assert.equal(files.length, 1);
    const text = await readFile(path.join(root, 'etc', 'sudoers.d', files[0]!), 'utf8');
    assert.match(text, new RegExp(`^# jit-access grant=${p.grantId} `));
    const uid = (await readFile(path.join(root, 'etc', 'passwd'), 'utf8')).split('\n').find((l) => l.startsWith('frank:'))!.split(':')[2];
    assert.match(text, new RegExp(`^#${uid} ALL=\\(ALL:ALL\\) NOPASSWD: ALL$`, 'm'), 'by uid: a name could read as an alias');
    await run('/usr/sbin/visudo', ['-c', '-q', '-f', path.join(root, 'etc', 'sudoers.d', files[0]!)]);
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 5000, 'ended');
    assert.deepEqual(await readdir(path.join(root, 'etc', 'sudoers.d')), []);
  });

  it('guard: a second account added to sudo during the window is out of sudo and locked at the end, and reported', async () => {
    await person('gina');
    await person('oldfriend');
    const { store, r } = await runner();
    const p = plan('gina', 0, 2);
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    // During the window, "gina" makes herself another admin account, and adds an existing one.
    await run('useradd', ['--prefix', root, '-u', String(nextUid++), '-G', 'sudo', '--', 'backdoor']);
    await run('usermod', ['--prefix', root, '-a', '-G', 'sudo', '--', 'oldfriend']);
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 5000, 'ended');
    assert.deepEqual(await groupMembers('sudo'), []);
    assert.equal((await shadowOf(root, 'backdoor')).expire, '1', 'the account made during the window is locked');
    assert.notEqual((await shadowOf(root, 'oldfriend')).expire, '1', 'an existing account is only taken out');
    const rogue = reports(store, p.grantId).filter((o) => o.type === 'rogue-admin').map((o) => JSON.parse(o.detail!));
    assert.deepEqual(rogue.map((f) => [f.account, f.group, f.madeInWindow]).sort(), [['backdoor', 'sudo', true], ['oldfriend', 'sudo', false]]);
  });

  it('guard with policy report: the member stays, the finding is reported once', async () => {
    await person('hank');
    await person('ivan');
    const { store, r } = await runner();
    const p = plan('hank', 0, 2, { guard: { action: 'report', allowed: [] } });
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    await run('usermod', ['--prefix', root, '-a', '-G', 'sudo', '--', 'ivan']);
    await r.reconcile();
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 5000, 'ended');
    assert.deepEqual(await groupMembers('sudo'), ['ivan']);
    assert.equal(reports(store, p.grantId).filter((o) => o.type === 'rogue-admin').length, 1);
  });

  it('made a member another way during the window (sudo as its primary group): ours is taken away, the rest audited, not fought', async () => {
    await person('kate');
    const { store, r } = await runner();
    const p = plan('kate', 0, 2);
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.deepEqual(await groupMembers('sudo'), ['kate']);
    await run('usermod', ['--prefix', root, '-g', 'sudo', '--', 'kate']);
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 5000, 'ended');
    assert.deepEqual(await groupMembers('sudo'), [], 'the supplementary membership we added is gone');
    const changed = reports(store, p.grantId).find((o) => o.type === 'membership-changed');
    assert.match(changed?.detail ?? '', /made a member of Administrators another way during the window/);
    assert.equal(reports(store, p.grantId).some((o) => o.type === 'removal-failed'), false);
  });

  it('back-to-back grants of one account: the second, enabled before the first ends, keeps the membership until its own end', async () => {
    await person('leo');
    const { store, r } = await runner();
    const first = plan('leo', 0, 2);
    const second = plan('leo', 2, 2, { enableAt: new Date(Date.now() + 500).toISOString() });
    for (const p of [first, second]) await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await until(async () => (await r.runDue(), store.state.grants[second.grantId]!.step === 'enabled'), 3000, 'second enabled');
    assert.equal(store.state.grants[second.grantId]!.elevation?.wasMember, false, 'the first grant\'s baseline, not the membership it found');
    await until(async () => (await r.runDue(), store.state.grants[first.grantId]!.step === 'removed'), 5000, 'first ended');
    assert.deepEqual(await groupMembers('sudo'), ['leo'], 'still elevated for the second grant');
    await until(async () => (await r.runDue(), store.state.grants[second.grantId]!.step === 'removed'), 5000, 'second ended');
    assert.deepEqual(await groupMembers('sudo'), []);
  });
});
