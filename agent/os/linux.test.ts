import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { passwordMatches, runAs, shadowOf } from '../../test/support/accounts.ts';
import { readSandboxEntry } from '../../test/support/sandbox.ts';
import { makeSandboxRoot } from './sandboxRoot.ts';
import { accountBackendContract, inAnHour, newName, newPassword, rejectsWith } from './contract.ts';
import { run, type RunOptions, type Runner } from './exec.ts';
import { expiryDay, LinuxBackend, MARKER_GROUP } from './linux.ts';

// Real accounts, in a throwaway root: needs root on Linux (shadow-utils, setpriv).
const canRun = process.platform === 'linux' && process.getuid?.() === 0;

async function sandbox(opts: { adminGroup?: 'sudo' | 'wheel'; run?: Runner } = {}) {
  const { root, cleanup } = await makeSandboxRoot(opts);
  // Why a random block: two test runs on one machine would otherwise share uids and kill
  // each other's processes in logoff.
  const uidMin = 2_000_000 + randomInt(100) * 1000;
  const uidMax = uidMin + 999;
  const backend = new LinuxBackend({ root, uidMin, uidMax, run: opts.run });
  const procs: { kill(): void }[] = [];
  /** useradd straight into the sandbox, bypassing the backend. */
  const useradd = (name: string, ...flags: string[]) =>
    run('useradd', ['--prefix', root, '-K', `UID_MIN=${uidMin}`, '-K', `UID_MAX=${uidMax}`, '-m', ...flags, '--', name]);
  return {
    root,
    backend,
    useradd,
    createUnmanaged: async (name: string) => void (await useradd(name)),
    spawnAs: async (uid: string) => {
      const proc = await runAs(uid);
      procs.push(proc);
      return proc;
    },
    cleanup: async () => {
      for (const proc of procs) proc.kill();
      await cleanup();
    },
  };
}

if (canRun) accountBackendContract('linux (sandbox root)', () => sandbox());

(canRun ? describe : describe.skip)('LinuxBackend (sandbox root)', function () {
  const cleanups: (() => Promise<void>)[] = [];
  const use = async (opts?: Parameters<typeof sandbox>[0]) => {
    const sb = await sandbox(opts);
    cleanups.push(sb.cleanup);
    return sb;
  };
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it('sets the OS expiry to the UTC day after expiresAt', async () => {
    assert.equal(expiryDay(new Date('2030-03-10T00:00:00Z')), Date.UTC(2030, 2, 11) / 86_400_000);
    assert.equal(expiryDay(new Date('2030-03-10T23:59:59.999Z')), Date.UTC(2030, 2, 11) / 86_400_000);
    const sb = await use();
    const name = newName();
    await sb.backend.createDisabled({ name, group: 'Users', grantId: 'g1', expiresAt: inAnHour() }, newPassword());
    assert.equal((await shadowOf(sb.root, name)).expire, '1');
    const at = new Date('2030-03-10T22:00:00Z');
    await sb.backend.enable(name, at);
    assert.equal((await shadowOf(sb.root, name)).expire, String(expiryDay(at)));
  });

  for (const adminGroup of ['sudo', 'wheel'] as const) {
    it(`maps Administrators to ${adminGroup} where that group exists`, async () => {
      const sb = await use({ adminGroup });
      const name = newName();
      const info = await sb.backend.createDisabled({ name, group: 'Administrators', grantId: 'g1', expiresAt: inAnHour() }, newPassword());
      assert.deepEqual(info.groups, ['Administrators']);
      const groups = (await readSandboxEntry(sb.root, name)).groups.map((l) => l.split(':')[0]).sort();
      assert.deepEqual(groups, [adminGroup, MARKER_GROUP, name].sort());
    });
  }

  it('stores a working password yet keeps the account disabled, also across setPassword', async () => {
    const sb = await use();
    const name = newName();
    const [first, second] = [newPassword(), newPassword()];
    await sb.backend.createDisabled({ name, group: 'Users', grantId: 'g1', expiresAt: inAnHour() }, first);
    assert.match((await readSandboxEntry(sb.root, name)).shadow ?? '', /^[^:]+:!\$6\$/);
    assert.equal(await passwordMatches(sb.root, name, first), true);
    await sb.backend.setPassword(name, second);
    assert.equal((await sb.backend.lookup(name))?.enabled, false);
    assert.equal(await passwordMatches(sb.root, name, second), true);
    assert.equal(await passwordMatches(sb.root, name, first), false);
    await sb.backend.enable(name, inAnHour());
    assert.match((await readSandboxEntry(sb.root, name)).shadow ?? '', /^[^:]+:\$6\$/);
    assert.equal(await passwordMatches(sb.root, name, second), true);
  });

  it('never puts a password in argv, only on stdin, and runs nothing for an invalid name', async () => {
    const calls: { argv: string[]; opts?: RunOptions }[] = [];
    const sb = await use({ run: (file, argv, opts) => (calls.push({ argv: [file, ...argv], opts }), run(file, argv, opts)) });
    const name = newName();
    const passwords = [newPassword(), newPassword()];
    await sb.backend.createDisabled({ name, group: 'Users', grantId: 'g1', expiresAt: inAnHour() }, passwords[0]!);
    await sb.backend.setPassword(name, passwords[1]!);
    await sb.backend.enable(name, inAnHour());
    await sb.backend.delete(name);
    for (const pw of passwords) {
      assert.ok(calls.every((c) => !c.argv.some((a) => a.includes(pw))));
      assert.equal(calls.filter((c) => c.opts?.stdin?.includes(pw)).length, 1);
    }
    assert.deepEqual(calls.filter((c) => c.opts?.stdin !== undefined).map((c) => c.argv[0]), ['chpasswd', 'chpasswd']);
    calls.length = 0;
    await rejectsWith(sb.backend.createDisabled({ name: 'a$(id)', group: 'Users', grantId: 'g1', expiresAt: inAnHour() }, 'pw'), 'INVALID_NAME');
    assert.deepEqual(calls, []);
  });

  it('needs both markers, the group and the GECOS tag', async () => {
    const sb = await use();
    await run('groupadd', ['--prefix', sb.root, MARKER_GROUP]);
    await sb.useradd('jtgrouponly', '-G', MARKER_GROUP);
    await sb.useradd('jttagonly', '-c', 'jit-access grant=g1');
    for (const name of ['jtgrouponly', 'jttagonly']) {
      assert.equal((await sb.backend.lookup(name))?.managed, false);
      await rejectsWith(sb.backend.delete(name), 'NOT_MANAGED');
    }
    assert.deepEqual(await sb.backend.listManaged(), []);
  });

  it('notices that usermod -U did not unlock a never-set password', async () => {
    const sb = await use();
    await run('groupadd', ['--prefix', sb.root, MARKER_GROUP]);
    await sb.useradd('jtnopw', '-e', '1', '-G', MARKER_GROUP, '-c', 'jit-access grant=g1');
    await rejectsWith(sb.backend.enable('jtnopw', inAnHour()), 'COMMAND_FAILED');
  });

  it('refuses to kill by a uid outside the sandbox range', async () => {
    const sb = await use();
    await run('groupadd', ['--prefix', sb.root, MARKER_GROUP]);
    // 1999999: below every sandbox range and used by nobody, so even a broken guard kills nothing.
    await sb.useradd('jtlowuid', '-u', '1999999', '-G', MARKER_GROUP, '-c', 'jit-access grant=g1');
    await rejectsWith(sb.backend.logoff('jtlowuid'), 'COMMAND_FAILED');
  });

  it('deletes an account whose home userdel keeps, and purges that home only if the account owned it', async () => {
    const sb = await use();
    for (const owner of ['root', 'self'] as const) {
      const name = newName();
      const info = await sb.backend.createDisabled({ name, group: 'Users', grantId: 'g1', expiresAt: inAnHour() }, newPassword());
      const home = path.join(sb.root, 'home', name);
      if (owner === 'root') {
        // userdel -r keeps a home the user does not own (exit 12): the account is gone all the same.
        await run('chown', ['root', home]);
        await sb.backend.delete(name);
      } else {
        // Deleted by someone else, without -r: the home is the account's own leftover.
        await run('userdel', ['--prefix', sb.root, '--', name]);
      }
      assert.equal(await sb.backend.lookup(name), null);
      await sb.backend.purge({ name, id: info.id });
      assert.equal(existsSync(home), owner === 'root', `${owner}-owned home`);
    }
  });
});
