import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { chown, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runAs, shadowOf } from '../test/support/accounts.ts';
import { suLogin } from '../test/support/login.ts';
import { inAnHour, newName, newPassword } from './os/contract.ts';
import { run } from './os/exec.ts';
import { LinuxBackend } from './os/linux.ts';
import { makeSandboxRoot } from './os/sandboxRoot.ts';
import { ipcObjectsOf } from './os/sysvipc.ts';
import { removeAccount, type RemovalStep } from './removal.ts';

const canRun = process.platform === 'linux' && process.getuid?.() === 0;

/**
 * Makes userdel fail for real: shadow-utils refuses to write /etc/group while group.lock names
 * a live process. usermod -L -e (the disable) does not touch group, so it still works.
 */
async function holdGroupLock(root: string): Promise<() => Promise<void>> {
  const lock = path.join(root, 'etc', 'group.lock');
  await writeFile(lock, String(process.pid));
  return () => rm(lock, { force: true });
}

/** Runs a shell command as `uid` (its own group), for leaving things behind as a user would. */
function asUser(uid: number, cmd: string): Promise<unknown> {
  return run('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'sh', '-c', cmd]);
}

(canRun ? describe : describe.skip)('removal: disable → log off → delete → purge (Linux, sandbox root)', function () {
  let root: string;
  let cleanup: () => Promise<void>;
  let b: LinuxBackend;
  let spool: string;
  const uidMin = 2_000_000 + randomInt(100) * 1000;

  beforeEach(async () => {
    ({ root, cleanup } = await makeSandboxRoot());
    spool = path.join(root, 'var', 'spool', 'cron', 'crontabs');
    await mkdir(spool, { recursive: true });
    b = new LinuxBackend({ root, uidMin, uidMax: uidMin + 999, leftoverDirs: ['/tmp', '/dev/shm', path.join(root, 'var', 'spool')] });
  });
  afterEach(() => cleanup());

  it('leaves the account locked and expired while its deletion keeps failing, so the mailed password no longer logs in', async () => {
    const name = newName();
    const password = newPassword();
    const info = await b.createDisabled({ name, group: 'Users', grantId: 'g1', expiresAt: inAnHour() }, password);
    await b.enable(name, inAnHour());
    assert.equal((await suLogin(root, name, password)).ok, true, 'the enabled account logs in');

    const release = await holdGroupLock(root);
    const steps: RemovalStep[] = [];
    try {
      await assert.rejects(removeAccount(b, { name, id: info.id }, 'disable', (s) => void steps.push(s)), /userdel exited 10/);
      assert.deepEqual(steps, ['disable', 'logoff']);
      const shadow = await shadowOf(root, name);
      assert.match(shadow.password, /^!/);
      assert.equal(shadow.expire, '1');
      const login = await suLogin(root, name, password);
      assert.equal(login.ok, false, login.output);
      assert.match(login.output, /Authentication failure|expired/);
    } finally {
      await release();
    }
    await removeAccount(b, { name, id: info.id }, 'delete', (s) => void steps.push(s));
    assert.deepEqual(steps, ['disable', 'logoff', 'delete', 'purge']);
    assert.equal(await b.lookup(name), null);
  });

  it('kills a session that outlives the disable, and purges what the account left behind', async () => {
    const uid = uidMin + 1 + randomInt(998);
    const name = newName();
    const info = await b.createDisabled({ name, group: 'Users', grantId: 'g1', expiresAt: inAnHour(), uid }, newPassword());
    assert.equal(info.id, String(uid));
    await b.enable(name, inAnHour());
    const session = await runAs(uid);
    const tag = randomBytes(4).toString('hex');
    const tmpFile = `/tmp/jit-left-${tag}`;
    const tmpDir = `/dev/shm/jit-left-${tag}`;
    await asUser(uid, `umask 077; echo secret > ${tmpFile}; mkdir ${tmpDir}; echo x > ${tmpDir}/f`);
    await asUser(uid, 'ipcmk -M 4096 >/dev/null && ipcmk -Q >/dev/null');
    const crontab = path.join(spool, name);
    await writeFile(crontab, '* * * * * true\n');
    await chown(crontab, uid, uid);
    assert.equal((await ipcObjectsOf(String(uid))).length, 2);

    const steps: [RemovalStep, number | undefined][] = [];
    try {
      await removeAccount(b, { name, id: info.id }, 'disable', (s, o) => void steps.push([s, o.ended]));
    } finally {
      session.kill();
    }
    assert.deepEqual(steps, [['disable', undefined], ['logoff', 1], ['delete', undefined], ['purge', undefined]]);
    assert.equal(session.alive(), false);
    for (const p of [tmpFile, tmpDir, crontab, path.join(root, 'home', name)]) {
      await assert.rejects(stat(p), { code: 'ENOENT' }, `${p} was left`);
    }
    assert.deepEqual(await ipcObjectsOf(String(uid)), []);
  });

  it('purges nothing of a uid that belongs to an account again', async () => {
    const uid = uidMin + 1 + randomInt(998);
    const name = newName();
    await b.createDisabled({ name, group: 'Users', grantId: 'g1', expiresAt: inAnHour(), uid }, newPassword());
    const file = `/tmp/jit-keep-${randomBytes(4).toString('hex')}`;
    await asUser(uid, `echo mine > ${file}`);
    try {
      await b.purge({ name: 'jtsomeoneelse', id: String(uid) });
      assert.equal(await readFile(file, 'utf8'), 'mine\n');
    } finally {
      await rm(file, { force: true });
    }
  });

  it('drops the marker group only once no account is in it', async () => {
    const name = newName();
    await b.createDisabled({ name, group: 'Users', grantId: 'g1', expiresAt: inAnHour() }, newPassword());
    await assert.rejects(b.dropMarker(), /still has members/);
    await removeAccount(b, { name, id: '' }, 'disable');
    await b.dropMarker();
    await b.dropMarker();
    assert.doesNotMatch(await readFile(path.join(root, 'etc', 'group'), 'utf8'), /^jit-managed:/m);
  });
});

