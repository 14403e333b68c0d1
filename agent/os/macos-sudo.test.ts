/**
 * Passwordless sudo for elevate-account on macOS, against the RECORDED Mac (test/support/fakeMac.ts):
 * the drop-in's argv, their order, what the model's /etc/sudoers.d ends up holding, and the
 * guard's sudoers digest. The model's visudo is this machine's real one (fakeMacSudo.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Plan } from '../../protocol/messages.ts';
import { assertShellSafe, lines, recordedMac, type FakeMac } from '../../test/support/fakeMac.ts';
import { MAC_SUDOERS } from '../../test/support/fakeMacSudo.ts';
import { GrantRunner } from '../accounts.ts';
import { takeInventory } from '../inventory.ts';
import type { CredentialSink } from '../sink.ts';
import { StateStore } from '../state.ts';
import { rejectsWith } from './contract.ts';
import { MacDirectory } from './macos-dir.ts';
import { MacElevation } from './macos-elevation.ts';
import { sudoDropIn } from './macos-sudo.ts';

const macs: FakeMac[] = [];
const GRANT = '3f2b8c1e-9d4a-4e6b-8f00-0123456789ab';
const FILE = `/etc/sudoers.d/jit-access-${GRANT}`;
const TMP = `${FILE}.new`;
const text = (name: string, grantId = GRANT) => `# jit-access grant=${grantId} (removed at the end of the grant)\n${name} ALL=(ALL:ALL) NOPASSWD: ALL\n`;
/** The random private folder of a run, made comparable. */
const stable = (l: string) => l.replace(/\/jit-sudoers-\w+\//, '/jit-sudoers-X/');
const sudoersD = (mac: FakeMac) => mac.under('/etc/sudoers.d').filter((p) => p !== '/etc/sudoers.d').sort();

/** A recorded Mac with maria's own account, and its MacElevation. */
function withMaria() {
  const { mac, backend } = recordedMac(macs);
  mac.addUser('maria', 'Maria');
  return { mac, e: backend.elevation };
}

/** The real visudo on `content`, apart from the model. */
function realVisudo(content: string): number | null {
  const f = path.join(os.tmpdir(), `jit-sudo-test-${randomUUID()}.sudoers`);
  writeFileSync(f, content, { mode: 0o440 });
  try {
    return spawnSync('/usr/sbin/visudo', ['-c', '-q', '-f', f]).status;
  } finally {
    rmSync(f, { force: true });
  }
}

describe('MacElevation (recorded macOS): passwordless sudo', function () {
  it('grantSudo: two lines, root:wheel 0440, at the final path; private copy, install -S beside it, visudo, mv, read back', async () => {
    const { mac, e } = withMaria();
    mac.calls.length = 0;
    await e.grantSudo('maria', GRANT);
    assert.equal(sudoDropIn(GRANT), FILE);
    const ran = lines(mac.calls).map(stable);
    assert.deepEqual(ran, [
      `/usr/bin/install -S -m 0440 -o root -g wheel /tmp/jit-sudoers-X/drop-in ${TMP}`,
      `/usr/sbin/visudo -c -q -f ${TMP}`,
      `/bin/mv -f ${TMP} ${FILE}`,
      `/bin/cat ${FILE}`,
    ]);
    const entry = mac.fs.get(FILE)!;
    assert.equal(entry.content, text('maria'));
    assert.deepEqual(entry.content!.split('\n'), [`# jit-access grant=${GRANT} (removed at the end of the grant)`, 'maria ALL=(ALL:ALL) NOPASSWD: ALL', '']);
    assert.deepEqual([entry.uid, entry.gid, entry.mode?.toString(8), entry.type], [0, 0, '440', 'Regular File']);
    assert.deepEqual(sudoersD(mac), [FILE], 'nothing else left in /etc/sudoers.d (no .new)');
    // The private copy's folder is gone.
    const src = mac.calls[0]!.argv[7]!;
    assert.match(src, /^\/tmp\/jit-sudoers-\w+\/drop-in$/);
    assert.equal(existsSync(path.dirname(src)), false);
    // What visudo checked is what ended up in place, and the real visudo accepts it.
    assert.equal(realVisudo(entry.content!), 0);
    assert.equal(realVisudo(`${entry.content!}maria ALL=(ALL:ALL NOPASSWD: ALL\n`), 1, 'the real visudo refuses a bad line');
    mac.assertAllModelled();
  });

  it("names the file after the grant with '.' as '_' (a name sudo reads); granting again replaces it", async () => {
    const { mac, e } = withMaria();
    await e.grantSudo('maria', 'g.1.x');
    await e.grantSudo('maria', 'g.1.x');
    assert.deepEqual(sudoersD(mac), ['/etc/sudoers.d/jit-access-g_1_x']);
    assert.equal(mac.fs.get('/etc/sudoers.d/jit-access-g_1_x')!.content, text('maria', 'g.1.x'));
  });

  it('refuses a bad account name or grant id before any command runs', async () => {
    const { mac, e } = withMaria();
    mac.calls.length = 0;
    // Shell or sudoers syntax, and what sudoers reads as ALL or as an alias rather than a user.
    for (const name of ['a;id', 'a b', '-x', '', 'maria\nALL', 'ALL', 'ADMINS', 'X', 'A1_B', '%admin', 'a,b', `m${'a'.repeat(32)}`]) {
      await rejectsWith(e.grantSudo(name, GRANT), 'INVALID_NAME');
    }
    for (const id of ['', '../x', 'a/b', 'a b', 'a\nb', 'x'.repeat(65), 'a;b']) {
      await rejectsWith(e.grantSudo('maria', id), 'COMMAND_FAILED');
      await rejectsWith(e.revokeSudo(id), 'COMMAND_FAILED');
    }
    assert.deepEqual(mac.calls, []);
    assert.deepEqual(sudoersD(mac), []);
  });

  it("visudo (the real one) refuses the drop-in: the file beside is removed, nothing in place, COMMAND_FAILED", async () => {
    const { mac, e } = withMaria();
    mac.addUser('Defaults', 'Sudoers keyword');
    mac.calls.length = 0;
    await rejectsWith(e.grantSudo('Defaults', GRANT), 'COMMAND_FAILED');
    assert.deepEqual(lines(mac.calls).map(stable), [
      `/usr/bin/install -S -m 0440 -o root -g wheel /tmp/jit-sudoers-X/drop-in ${TMP}`,
      `/usr/sbin/visudo -c -q -f ${TMP}`,
      `/bin/rm -f ${TMP}`,
    ]);
    assert.equal(realVisudo(text('Defaults')), 1, 'the content really is invalid sudoers');
    assert.deepEqual(sudoersD(mac), []);
    mac.assertAllModelled();
  });

  it('a failed rename, or a file that reads back otherwise, leaves nothing of ours', async () => {
    const { mac, e } = withMaria();
    mac.faults.mvFails = true;
    await rejectsWith(e.grantSudo('maria', GRANT), 'COMMAND_FAILED');
    assert.equal(lines(mac.calls).at(-1), `/bin/rm -f ${TMP}`);
    assert.deepEqual(sudoersD(mac), []);
    mac.faults.mvFails = false;

    // cat shows something else than what was written (the file changed under us).
    const run = mac.run;
    const changed = new MacElevation(new MacDirectory(async (file, argv, opts) => {
      const r = await run(file, argv, opts);
      return file === '/bin/cat' && argv[0] === FILE ? { ...r, stdout: r.stdout.replace('maria', 'mallory') } : r;
    }));
    await rejectsWith(changed.grantSudo('maria', GRANT), 'COMMAND_FAILED');
    assert.equal(lines(mac.calls).at(-1), `/bin/rm -f ${FILE}`);
    assert.deepEqual(sudoersD(mac), []);

    mac.faults.notRoot = true;
    await rejectsWith(e.grantSudo('maria', GRANT), 'ACCESS_DENIED');
    assert.deepEqual(sudoersD(mac), []);
    mac.assertAllModelled();
  });

  it('revokeSudo removes ours (read back); missing is fine; a file without our marker for that grant is left and refused', async () => {
    const { mac, e } = withMaria();
    await e.grantSudo('maria', GRANT);
    mac.calls.length = 0;
    await e.revokeSudo(GRANT);
    assert.deepEqual(lines(mac.calls), [`/bin/cat ${FILE}`, `/bin/rm -f ${FILE}`, `/usr/bin/stat -f %u:%HT ${FILE}`]);
    assert.deepEqual(sudoersD(mac), []);
    mac.calls.length = 0;
    await e.revokeSudo(GRANT);
    assert.deepEqual(lines(mac.calls), [`/bin/cat ${FILE}`]);

    // Somebody else's file at our path, and another grant's whose id differs by '.' and '_'.
    const foreign = '/etc/sudoers.d/jit-access-mine';
    mac.fs.set(foreign, { uid: 0, gid: 0, mode: 0o440, type: 'Regular File', content: 'bob ALL=(ALL) ALL\n' });
    await rejectsWith(e.revokeSudo('mine'), 'NOT_MANAGED');
    await e.grantSudo('maria', 'g.1');
    await rejectsWith(e.revokeSudo('g_1'), 'NOT_MANAGED');
    assert.deepEqual(sudoersD(mac), ['/etc/sudoers.d/jit-access-g_1', foreign]);
    await e.revokeSudo('g.1');
    assert.deepEqual(sudoersD(mac), [foreign]);

    // rm that does not take it away is a failure.
    await e.grantSudo('maria', GRANT);
    mac.faults.rmFails.add(FILE);
    await rejectsWith(e.revokeSudo(GRANT), 'COMMAND_FAILED');
    assert.ok(mac.fs.has(FILE));
    mac.assertAllModelled();
  });

  it('snapshot: a digest of /etc/sudoers and sudoers.d that a change moves and our own drop-in does not', async () => {
    const { mac, e } = withMaria();
    mac.calls.length = 0;
    const first = (await e.snapshot()).sudoers;
    assert.match(first, /^[0-9a-f]{64}$/);
    assert.deepEqual(lines(mac.calls).filter((l) => !l.startsWith('/usr/bin/dscl')), ['/bin/ls /etc/sudoers.d', '/bin/cat /etc/sudoers']);
    assert.equal((await e.snapshot()).sudoers, first, 'the same files, the same digest');

    await e.grantSudo('maria', GRANT);
    assert.equal((await e.snapshot()).sudoers, first, 'our drop-in is not counted');

    mac.fs.set('/etc/sudoers.d/zz-someone', { uid: 0, gid: 0, mode: 0o440, type: 'Regular File', content: 'maria ALL=(ALL) NOPASSWD: ALL\n' });
    const withFile = (await e.snapshot()).sudoers;
    assert.notEqual(withFile, first, 'a new file in sudoers.d');
    mac.calls.length = 0;
    await e.snapshot();
    assert.ok(lines(mac.calls).includes('/bin/cat /etc/sudoers.d/zz-someone'));
    assert.ok(!lines(mac.calls).includes(`/bin/cat ${FILE}`));
    mac.fs.delete('/etc/sudoers.d/zz-someone');
    assert.equal((await e.snapshot()).sudoers, first);

    mac.fs.get('/etc/sudoers')!.content = `${MAC_SUDOERS}maria ALL=(ALL) NOPASSWD: ALL\n`;
    assert.notEqual((await e.snapshot()).sudoers, first, 'a change to /etc/sudoers');
    mac.assertAllModelled();
  });

  it("reports 'passwordless-sudo' among its capabilities", async () => {
    const { e } = withMaria();
    assert.deepEqual([...e.capabilities], ['elevate-account', 'passwordless-sudo']);
    const { backend } = recordedMac(macs);
    assert.deepEqual((await takeInventory(backend)).capabilities, ['elevate-account', 'passwordless-sudo']);
  });

  describe('through GrantRunner', () => {
    let dir: string;
    const sink: CredentialSink = { deliver: () => {}, isActive: () => false, cancel: () => {}, ended: async () => {}, elevated: async () => {} };
    beforeEach(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'jit-mac-sudo-'))));
    afterEach(async () => rm(dir, { recursive: true, force: true }));

    async function grant(fake: ReturnType<typeof recordedMac>, during?: () => void) {
      let offset = 0;
      const store = await StateStore.create(path.join(dir, 'state.json'), { version: 1, serverUrl: 'http://x', endpointId: 'e', credential: 'c', hostname: 'h', grants: {}, seenInstructions: [], outbox: [] });
      const r = new GrantRunner(store, fake.backend, sink, pino({ level: 'silent' }), () => Date.now() + offset);
      const p = Plan.parse({
        grantId: GRANT, operation: 'elevate-account', account: 'maria', group: 'Administrators', email: 'a@example.com', passwordlessSudo: true,
        startAt: new Date().toISOString(), enableAt: new Date().toISOString(), endAt: new Date(Date.now() + 3_600_000).toISOString(), serverSideSmtp: false,
      });
      await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
      await r.runDue();
      assert.equal(store.state.grants[GRANT]!.step, 'enabled');
      assert.equal(store.state.grants[GRANT]!.elevation?.sudo, true);
      assert.equal(fake.mac.fs.get(FILE)?.content, text('maria'));
      during?.();
      offset = 2 * 3_600_000;
      await r.runDue();
      assert.equal(store.state.grants[GRANT]!.step, 'removed');
      assert.equal(fake.mac.fs.has(FILE), false, 'the drop-in is gone at the end');
      fake.mac.assertAllModelled();
      assertShellSafe(fake.mac.calls);
      return store.state.outbox.filter((o) => o.grantId === GRANT).map((o) => o.type);
    }

    it('writes the drop-in at enable and removes it at the end; our own drop-in is no sudoers change', async () => {
      const fake = recordedMac(macs);
      fake.mac.addUser('maria', 'Maria');
      const reported = await grant(fake);
      assert.ok(reported.includes('enabled') && reported.includes('removed'), reported.join());
      assert.ok(!reported.includes('sudoers-changed'), reported.join());
    });

    it('a change to the sudoers files during the window is reported', async () => {
      const fake = recordedMac(macs);
      fake.mac.addUser('maria', 'Maria');
      const reported = await grant(fake, () => {
        fake.mac.fs.set('/etc/sudoers.d/backdoor', { uid: 0, gid: 0, mode: 0o440, type: 'Regular File', content: 'maria ALL=(ALL) NOPASSWD: ALL\n' });
      });
      assert.equal(reported.filter((t) => t === 'sudoers-changed').length, 1, reported.join());
    });
  });

  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    const calls = macs.flatMap((m) => m.calls);
    assert.ok(calls.some((c) => c.file === '/usr/sbin/visudo'));
    assertShellSafe(calls);
  });
});
