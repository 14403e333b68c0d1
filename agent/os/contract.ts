import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { osHonours, type Group, type OperatingSystem } from '../../protocol/groups.ts';
import { AccountError, type AccountBackend, type AccountErrorCode, type CreateAccountSpec } from './backend.ts';

export interface ContractSetup {
  backend: AccountBackend;
  /** Starts a long-running process owned by the account with this id (uid / SID). */
  spawnAs?(id: string): Promise<{ alive(): boolean; kill(): void }>;
  /** Creates an account directly through the OS, without our ownership marker. */
  createUnmanaged?(name: string): Promise<void>;
  /** Passwords for this backend when its alphabet is narrower than `newPassword()`'s (macOS: no quotes, backslash or spaces). */
  newPassword?(): string;
  cleanup(): Promise<void>;
}

export const newName = (): string => `jt${randomBytes(5).toString('hex')}`;
/** Random, with the characters a careless implementation would trip on. */
export const newPassword = (): string => `P:${randomBytes(12).toString('base64')} "$(x)'\`y\``;
export const inAnHour = (): Date => new Date(Date.now() + 3_600_000);
const anyPassword = newPassword;

export async function rejectsWith(p: Promise<unknown>, code: AccountErrorCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AccountError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 50))) {
    if (Date.now() > end) throw new Error('timed out waiting');
  }
}

/**
 * The behaviour every AccountBackend must show, run against a real OS (or a sandbox of one).
 * Each test gets a fresh `setup()`; accounts it creates are deleted before `cleanup()`.
 */
export function accountBackendContract(label: string, setup: () => Promise<ContractSetup>): void {
  describe(`AccountBackend contract: ${label}`, function () {
    let env: ContractSetup;
    let b: AccountBackend;
    let created: string[];
    // Shadows the export: a backend with a narrower password alphabet supplies its own.
    const newPassword = (): string => env.newPassword?.() ?? anyPassword();
    const spec = (name: string, group: Group = 'Administrators'): CreateAccountSpec => {
      created.push(name);
      return { name, group, grantId: `grant-${name}`, expiresAt: inAnHour() };
    };

    beforeEach(async () => {
      env = await setup();
      b = env.backend;
      created = [];
    });
    afterEach(async () => {
      for (const name of created) await b.delete(name).catch(() => {});
      await env.cleanup();
    });

    it('creates disabled, enables, logs off, disables, deletes and purges', async () => {
      const name = newName();
      const info = await b.createDisabled(spec(name), newPassword());
      assert.deepEqual(info, { name, id: info.id, enabled: false, managed: true, groups: ['Administrators'] });
      assert.deepEqual(await b.lookup(name), info);
      assert.deepEqual((await b.listManaged()).map((i) => i.name), [name]);

      await b.enable(name, inAnHour());
      assert.equal((await b.lookup(name))?.enabled, true);
      await b.disable(name);
      assert.equal((await b.lookup(name))?.enabled, false);
      if (env.spawnAs) {
        // A session still running after the disable is what logoff is for.
        const proc = await env.spawnAs(info.id);
        try {
          assert.ok(proc.alive());
          assert.ok((await b.logoff(name)).ended >= 1);
          await waitFor(() => !proc.alive());
        } finally {
          proc.kill();
        }
      }
      assert.deepEqual(await b.logoff(name), { ended: 0 });

      await b.delete(name);
      assert.equal(await b.lookup(name), null);
      assert.deepEqual(await b.listManaged(), []);
      await b.purge({ name, id: info.id });
    });

    it('repeats every step harmlessly', async () => {
      const name = newName();
      const info = await b.createDisabled(spec(name), newPassword());
      for (const enabled of [true, true, false, false, true, false]) {
        await (enabled ? b.enable(name, inAnHour()) : b.disable(name));
        assert.equal((await b.lookup(name))?.enabled, enabled);
      }
      await b.setGroups(name, 'Users');
      await b.setGroups(name, 'Users');
      assert.deepEqual((await b.lookup(name))?.groups, ['Users']);
      await b.delete(name);
      await b.delete(name);
      assert.equal(await b.lookup(name), null);
      await b.disable(name);
      await b.purge({ name, id: info.id });
      await b.purge({ name, id: info.id });
    });

    it('arms the OS backstop timer, arms it again in place, and disarms it', async () => {
      const name = newName();
      await b.createDisabled(spec(name), newPassword());
      for (let i = 0; i < 2; i++) assert.equal(await b.armBackstop(name, inAnHour()), 'timer');
      await b.disarmBackstop(name);
      await b.disarmBackstop(name);
      await rejectsWith(b.armBackstop(newName(), inAnHour()), 'NOT_FOUND');
    });

    it('gives the account the uid it was handed, and refuses a taken one', async function () {
      if (!b.uidRange) this.skip();
      const uid = b.uidRange.min + 1 + Math.floor(Math.random() * 1000);
      const first = newName();
      assert.equal((await b.createDisabled({ ...spec(first), uid }, newPassword())).id, String(uid));
      const second = newName();
      await rejectsWith(b.createDisabled({ ...spec(second), uid }, newPassword()), 'ID_TAKEN');
      assert.equal(await b.lookup(second), null);
    });

    it('reports a missing account', async () => {
      const name = newName();
      assert.equal(await b.lookup(name), null);
      await b.delete(name);
      await b.disable(name);
      await rejectsWith(b.enable(name, inAnHour()), 'NOT_FOUND');
      await rejectsWith(b.logoff(name), 'NOT_FOUND');
    });

    it('refuses to touch an account without the ownership marker', async function () {
      if (!env.createUnmanaged) this.skip();
      const name = newName();
      await env.createUnmanaged(name);
      const before = await b.lookup(name);
      assert.equal(before?.managed, false);
      assert.deepEqual(await b.listManaged(), []);
      await rejectsWith(b.setGroups(name, 'Users'), 'NOT_MANAGED');
      await rejectsWith(b.enable(name, inAnHour()), 'NOT_MANAGED');
      await rejectsWith(b.disable(name), 'NOT_MANAGED');
      await rejectsWith(b.setPassword(name, newPassword()), 'NOT_MANAGED');
      await rejectsWith(b.logoff(name), 'NOT_MANAGED');
      await rejectsWith(b.delete(name), 'NOT_MANAGED');
      await rejectsWith(b.armBackstop(name, inAnHour()), 'NOT_MANAGED');
      await rejectsWith(b.createDisabled(spec(name), newPassword()), 'ALREADY_EXISTS');
      // Its id is not a deleted account of ours: purge must leave everything of it alone.
      await b.purge({ name, id: before!.id });
      assert.deepEqual(await b.lookup(name), before);
    });

    it('rejects hostile names with INVALID_NAME and runs nothing', async () => {
      const marker = path.join(os.tmpdir(), `jit-contract-${randomBytes(6).toString('hex')}`);
      const hostile = [
        `a$(touch ${marker})`, `a\`touch ${marker}\``, `a;touch ${marker}`, "a'b", 'a"b', 'a\u2019b', 'a\u201cb',
        'a\nb', 'a b', '-rf', '../etc', 'Root', 'ä', '', 'a'.repeat(21),
      ];
      for (const name of hostile) {
        const calls: Promise<unknown>[] = [
          b.lookup(name), b.createDisabled(spec(name), newPassword()), b.setGroups(name, 'Users'),
          b.enable(name, inAnHour()), b.disable(name), b.setPassword(name, newPassword()), b.logoff(name), b.delete(name),
        ];
        for (const call of calls) await rejectsWith(call, 'INVALID_NAME');
      }
      assert.equal(existsSync(marker), false);
      assert.deepEqual(await b.listManaged(), []);
    });

    it('refuses a taken name with ALREADY_EXISTS and leaves the account alone', async () => {
      const name = newName();
      const info = await b.createDisabled(spec(name), newPassword());
      await rejectsWith(b.createDisabled(spec(name, 'Users'), newPassword()), 'ALREADY_EXISTS');
      assert.deepEqual(await b.lookup(name), info);
    });

    it('handles Power Users as the OS can', async () => {
      const name = newName();
      if (osHonours(b.os as OperatingSystem, 'Power Users')) {
        assert.deepEqual((await b.createDisabled(spec(name, 'Power Users'), newPassword())).groups, ['Power Users']);
      } else {
        await rejectsWith(b.createDisabled(spec(name, 'Power Users'), newPassword()), 'UNSUPPORTED_GROUP');
        assert.equal(await b.lookup(name), null);
      }
    });
  });
}
