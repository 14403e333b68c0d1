/**
 * elevate-account and the rogue-admin guard on macOS, through GrantRunner and MacBackend on the
 * recorded Mac (test/support/fakeMac.ts): the argv, their order and what the model ends up as.
 * What a real Mac must confirm is listed in macos.test.ts (dseditgroup, ps's keywords).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Plan } from '../../protocol/messages.ts';
import { assertShellSafe, lines, recordedMac, type FakeMac } from '../../test/support/fakeMac.ts';
import { GrantRunner } from '../accounts.ts';
import type { CredentialSink } from '../sink.ts';
import { StateStore } from '../state.ts';
import { takeInventory } from '../inventory.ts';
import type { MacBackend } from './macos.ts';

const sink: CredentialSink = { deliver: () => {}, isActive: () => false, cancel: () => {}, ended: async () => {}, elevated: async () => {} };

describe('elevate-account on macOS (recorded)', () => {
  let dir: string;
  let mac: FakeMac;
  let backend: MacBackend;
  const macs: FakeMac[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-mac-elevate-'));
    ({ mac, backend } = recordedMac(macs));
  });
  afterEach(async () => {
    mac.assertAllModelled();
    assertShellSafe(mac.calls);
    await rm(dir, { recursive: true, force: true });
  });

  const runner = async (now: () => number = Date.now) => {
    const store = await StateStore.create(path.join(dir, 'state.json'), { version: 1, serverUrl: 'http://x', endpointId: 'e', credential: 'c', hostname: 'h', grants: {}, seenInstructions: [], outbox: [] });
    return { store, r: new GrantRunner(store, backend, sink, pino({ level: 'silent' }), now) };
  };
  const plan = (account: string, extra: Partial<Plan> = {}) =>
    Plan.parse({
      grantId: randomUUID(), operation: 'elevate-account', account, group: 'Administrators', email: 'a@example.com',
      startAt: new Date().toISOString(), enableAt: new Date().toISOString(), endAt: new Date(Date.now() + 3_600_000).toISOString(), serverSideSmtp: false, ...extra,
    });

  it('puts the account in admin, then takes it out, ends its processes and the root shell it opened with sudo', async () => {
    mac.addUser('maria', 'Maria');
    const uid = mac.uidOf('maria')!;
    let offset = 0;
    const { store, r } = await runner(() => Date.now() + offset);
    const p = plan('maria');
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.equal(mac.isMember('maria', 'admin'), true);
    assert.equal(store.state.grants[p.grantId]!.elevation?.wasMember, false);
    const shell = mac.spawn(uid, { domain: 'gui' });
    const sudo = mac.spawn(0, { ruid: uid, ppid: shell.pid }); // sudo keeps the caller's real uid
    const rootShell = mac.spawn(0, { ppid: sudo.pid });
    const unrelated = mac.spawn(0);
    offset = 2 * 3_600_000;
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'removed');
    assert.equal(mac.isMember('maria', 'admin'), false);
    assert.deepEqual([shell.alive(), sudo.alive(), rootShell.alive(), unrelated.alive()], [false, false, false, true]);
    assert.ok(lines(mac.calls).includes('/usr/sbin/dseditgroup -o edit -q -d maria -t user admin'));
    assert.equal(mac.users.has('maria'), true, 'the account itself is kept');
  });

  it('keeps a membership that predates the grant; refuses a system account with the reason', async () => {
    mac.addUser('olivia', 'Olivia');
    mac.groups.get('admin')!.members.add('olivia');
    mac.addUser('_www', 'World Wide Web Server', 70);
    let offset = 0;
    const { store, r } = await runner(() => Date.now() + offset);
    const keep = plan('olivia');
    const sys = plan('_www');
    for (const p of [keep, sys]) await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.equal(store.state.grants[sys.grantId]!.step, 'failed');
    assert.match(store.state.outbox.find((o) => o.grantId === sys.grantId && o.type === 'failed')!.detail!, /system account/);
    offset = 2 * 3_600_000;
    await r.runDue();
    assert.equal(store.state.grants[keep.grantId]!.step, 'removed');
    assert.equal(mac.isMember('olivia', 'admin'), true);
  });

  it('guard: an account made and put in admin during the window is taken out and disabled, an old one only taken out', async () => {
    mac.addUser('nina', 'Nina');
    mac.addUser('oldfriend', 'Old Friend');
    let offset = 0;
    const { store, r } = await runner(() => Date.now() + offset);
    const p = plan('nina');
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    mac.addUser('backdoor', 'Backdoor');
    mac.groups.get('admin')!.members.add('backdoor');
    mac.groups.get('admin')!.members.add('oldfriend');
    offset = 2 * 3_600_000;
    await r.runDue();
    assert.equal(mac.isMember('backdoor', 'admin'), false);
    assert.equal(mac.isMember('oldfriend', 'admin'), false);
    assert.equal(mac.disabled('backdoor'), true);
    assert.equal(mac.disabled('oldfriend'), false);
    const found = store.state.outbox.filter((o) => o.type === 'rogue-admin').map((o) => JSON.parse(o.detail!));
    assert.deepEqual(found.map((f) => [f.account, f.group, f.madeInWindow]).sort(), [['backdoor', 'admin', true], ['oldfriend', 'admin', false]]);
  });

  it('reports its people, system accounts flagged, and that it can elevate and give passwordless sudo', async () => {
    mac.addUser('paula', 'Paula');
    mac.addUser('_spotlight', 'Spotlight', 89);
    const inv = await takeInventory(backend);
    assert.deepEqual(inv.capabilities, ['elevate-account', 'passwordless-sudo']);
    assert.deepEqual(inv.accounts.map((a) => [a.name, a.system]), [['paula', false], ['_spotlight', true]].filter(([n]) => inv.accounts.some((a) => a.name === n)));
    assert.equal(inv.accounts.find((a) => a.name === 'paula')?.system, false);
    assert.equal(inv.accounts.find((a) => a.name === '_spotlight')?.system, true);
  });
});
