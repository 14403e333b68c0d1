/**
 * GrantRunner, the policy layer, on real accounts in a sandbox root (LinuxBackend), with faults
 * injected by wrapping the backend: what it does when the OS or its own steps misbehave.
 */
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Plan, type Instruction } from '../protocol/messages.ts';
import { runAs, until } from '../test/support/accounts.ts';
import { GrantRunner } from './accounts.ts';
import type { AccountBackend } from './os/backend.ts';
import { run } from './os/exec.ts';
import { LinuxBackend } from './os/linux.ts';
import { makeSandboxRoot } from './os/sandboxRoot.ts';
import type { CredentialSink } from './sink.ts';
import { StateStore } from './state.ts';

const canRun = process.platform === 'linux' && process.getuid?.() === 0;

/** A delivery that is always under way: no password is set again for it. */
const sink: CredentialSink = { deliver: () => {}, isActive: () => true, cancel: () => {}, ended: async () => {}, elevated: async () => {} };

/** The backend with `method` failing its first `times` calls. */
function failing<K extends keyof AccountBackend>(b: AccountBackend, method: K, times: number): AccountBackend {
  let left = times;
  return new Proxy(b, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (prop !== method || typeof v !== 'function') return typeof v === 'function' ? v.bind(target) : v;
      return (...args: unknown[]) => (left-- > 0 ? Promise.reject(new Error(`injected ${String(method)} failure`)) : v.apply(target, args));
    },
  });
}

(canRun ? describe : describe.skip)('GrantRunner on a sandbox root', function () {
  let root: string;
  let cleanup: () => Promise<void>;
  let dir: string;
  let linux: LinuxBackend;
  const uidMin = 2_000_000 + randomInt(100) * 1000;

  beforeEach(async () => {
    ({ root, cleanup } = await makeSandboxRoot());
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-runner-'));
    linux = new LinuxBackend({ root, uidMin, uidMax: uidMin + 999 });
  });
  afterEach(async () => {
    await cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const runner = async (backend: AccountBackend = linux, delivery: CredentialSink = sink) => {
    const store = await StateStore.create(path.join(dir, 'state.json'), { version: 1, serverUrl: 'http://x', endpointId: 'e', credential: 'c', hostname: 'h', sandboxRoot: root, grants: {}, seenInstructions: [], outbox: [] });
    return { store, r: new GrantRunner(store, backend, delivery, pino({ level: 'silent' })) };
  };
  const plan = (startIn: number, seconds: number): Plan => {
    const start = Date.now() + startIn * 1000;
    return Plan.parse({ grantId: randomUUID(), group: 'Users', email: 'a@example.com', startAt: new Date(start).toISOString(), enableAt: new Date(start).toISOString(), endAt: new Date(start + seconds * 1000).toISOString(), serverSideSmtp: false });
  };
  const provision = (p: Plan): Instruction => ({ id: randomUUID(), kind: 'provision', plan: p });
  const reports = (store: StateStore, grantId: string) => store.state.outbox.filter((o) => o.grantId === grantId).map((o) => o.type);

  it('passwordless sudo for a temporary account: a visudo-checked drop-in before it can log in, gone at its removal', async () => {
    const { mkdir, readdir } = await import('node:fs/promises');
    const dropIns = path.join(root, 'etc', 'sudoers.d');
    await mkdir(dropIns, { recursive: true });
    const { store, r } = await runner();
    const p = { ...plan(0, 1), group: 'Administrators' as const, passwordlessSudo: true };
    await r.accept(provision(p));
    await r.runDue();
    const g = store.state.grants[p.grantId]!;
    assert.equal(g.step, 'enabled');
    const [file, ...more] = await readdir(dropIns);
    assert.ok(file && more.length === 0, 'one drop-in');
    const text = await readFile(path.join(dropIns, file), 'utf8');
    assert.match(text, new RegExp(`^# jit-access grant=${p.grantId} .*account ${g.username}\\)\n#${g.accountId} ALL=\\(ALL:ALL\\) NOPASSWD: ALL\n$`));
    await run('/usr/sbin/visudo', ['-c', '-q', '-f', path.join(dropIns, file)]);
    await until(async () => (await r.runDue(), store.state.grants[p.grantId]!.step === 'removed'), 6000, 'removed');
    assert.deepEqual(await readdir(dropIns), [], 'no root left for whoever gets the uid next');
  });

  it('takes a rogue admin out at the end of a temporary grant even while its account’s deletion keeps failing', async () => {
    const { store, r } = await runner(failing(linux, 'delete', 100));
    const p = { ...plan(0, 1), group: 'Administrators' as const };
    await r.accept(provision(p));
    await r.runDue();
    assert.ok(store.state.grants[p.grantId]!.guard, 'snapshot taken at enable');
    await run('useradd', ['--prefix', root, '-u', String(uidMin + 900), '-G', 'sudo', '--', 'rogue1']);
    await new Promise((res) => setTimeout(res, 1100));
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'disabled', 'the deletion failed');
    const sudo = (await readFile(path.join(root, 'etc', 'group'), 'utf8')).split('\n').find((l) => l.startsWith('sudo:'))!;
    assert.doesNotMatch(sudo, /rogue1/);
    assert.ok(reports(store, p.grantId).includes('rogue-admin'));
  });

  it('goes on to purge, at once and once, a grant whose account someone else deleted while in use', async () => {
    const { store, r } = await runner();
    const p = plan(0, 600);
    await r.accept(provision(p));
    await r.runDue();
    const g = store.state.grants[p.grantId]!;
    assert.equal(g.step, 'enabled');
    const session = await runAs(g.accountId!);
    try {
      await run('userdel', ['--prefix', root, '--', g.username]); // not through us, session still running
      await r.reconcile();
      await r.runDue();
      assert.equal(g.step, 'removed');
      await until(() => !session.alive(), 2000, 'the session of the deleted account is ended by the purge');
      assert.equal(r.nextDueAt(), null, 'nothing left due: no busy loop until the end');
      assert.deepEqual(reports(store, p.grantId).filter((t) => t === 'removed'), ['removed']);
    } finally {
      session.kill();
    }
  });

  it('does not lose an instruction whose planning failed: it is not marked seen, and applied when sent again', async () => {
    const { store, r } = await runner(failing(linux, 'lookup', 1));
    const ins = provision(plan(60, 60));
    await assert.rejects(r.accept(ins), /injected lookup failure/);
    assert.equal(store.seen(ins.id), false);
    assert.equal(await r.accept(ins), true);
    assert.ok(store.state.grants[ins.kind === 'provision' ? ins.plan.grantId : '']);
  });

  it('ends, without creating its account, a grant revoked (by id alone) before its plan arrived', async () => {
    const { store, r } = await runner();
    const p = plan(0, 600);
    await r.accept({ id: randomUUID(), kind: 'revoke', grantId: p.grantId });
    await r.accept(provision(p));
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'removed');
    assert.deepEqual(reports(store, p.grantId), ['removed']);
    assert.deepEqual(await linux.listManaged(), []);
  });

  it('obeys a malformed revoke for a grant it runs (failing safe), and reports a repeated rejection once', async () => {
    const { store, r } = await runner();
    const p = plan(0, 600);
    await r.accept(provision(p));
    await r.runDue();
    for (let i = 0; i < 3; i++) await r.reject({ id: null, grantId: p.grantId, kind: 'revoke', reason: 'instruction rejected by the agent: plan.endAt: bad' });
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'removed');
    assert.equal(reports(store, p.grantId).filter((t) => t === 'rejected').length, 1);
  });

  it('retries an OS backstop that could not be armed, alerts after three failures, and arms it', async () => {
    const { store, r } = await runner(failing(linux, 'armBackstop', 3));
    const p = plan(0, 600);
    await r.accept(provision(p));
    await r.runDue();
    const g = store.state.grants[p.grantId]!;
    assert.equal(g.step, 'enabled', 'the grant is not held back by its timer');
    assert.equal(g.backstop, 'failed');
    for (let i = 0; i < 3 && (g.backstop as string) !== 'armed'; i++) {
      await until(() => Date.now() >= Date.parse(g.backstopRetryAt!), 10_000, 'the retry time');
      await r.runDue();
    }
    assert.equal(g.backstop, 'armed');
    assert.deepEqual(reports(store, p.grantId).filter((t) => t === 'backstop-failed'), ['backstop-failed']);
    await linux.disarmBackstop(g.username);
  });

  it('ended access goes first: every due account disabled, then each logged off and deleted, then the purges, the access-ended emails last', async () => {
    const calls: string[] = [];
    const recording = new Proxy(linux, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (['disable', 'logoff', 'delete', 'purge'].includes(String(prop))) calls.push(String(prop));
          return v.apply(target, args);
        };
      },
    }) as AccountBackend;
    const { store, r } = await runner(recording, { ...sink, ended: async () => void calls.push('email') });
    const plans = [plan(0, 2), plan(0, 2), plan(0, 2)];
    for (const p of plans) await r.accept(provision(p));
    await r.runDue();
    for (const p of plans) assert.equal(store.state.grants[p.grantId]!.step, 'enabled');
    await until(() => Date.now() > Date.parse(plans[2]!.endAt), 5000, 'the ends');
    await r.runDue();
    assert.deepEqual(calls, [
      ...['disable', 'disable', 'disable'],
      ...['logoff', 'delete', 'logoff', 'delete', 'logoff', 'delete'],
      ...['purge', 'purge', 'purge'],
      ...['email', 'email', 'email'],
    ]);
    for (const p of plans) assert.equal(store.state.grants[p.grantId]!.step, 'removed');
  });
  it('an end that comes during a long pass is not left for the next: the account is disabled before the pass goes on', async () => {
    const calls: string[] = [];
    let slowName = '';
    const recording = new Proxy(linux, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          const name = typeof args[0] === 'string' ? args[0] : (args[0] as { name?: string })?.name;
          if (['disable', 'delete', 'purge'].includes(String(prop))) calls.push(`${String(prop)} ${name === slowName ? 'A' : 'B'}`);
          // A's delete takes 1 s: B's end comes in the middle of it.
          if (prop === 'delete' && name === slowName) await new Promise((r) => setTimeout(r, 1000));
          return v.apply(target, args);
        };
      },
    }) as AccountBackend;
    const { store, r } = await runner(recording);
    const a = plan(0, 1);
    const b = plan(0, 1.6);
    for (const p of [a, b]) await r.accept(provision(p));
    await r.runDue();
    slowName = store.state.grants[a.grantId]!.username;
    await until(() => Date.now() > Date.parse(a.endAt), 5000, 'A ends');
    await r.runDue();
    assert.ok(Date.now() > Date.parse(b.endAt), 'B ended during the pass');
    assert.deepEqual(calls.slice(0, 4), ['disable A', 'delete A', 'disable B', 'purge A']);
  });
});
