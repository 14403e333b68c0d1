/**
 * MacBackend's removal against the RECORDED macOS (test/support/fakeMac.ts): logoff, delete
 * (with its dscl fallback), purge of what a deleted account left behind, and dropMarker.
 * The checklist of what to verify on a real Mac is in macos.test.ts.
 */
import assert from 'node:assert/strict';
import { assertShellSafe, DISABLED, type FakeMac, lines, macPassword, recordedMac, spec } from '../../test/support/fakeMac.ts';
import { removeAccount } from '../removal.ts';
import { rejectsWith } from './contract.ts';
import { MAC_BIN, MARKER_GROUP } from './macos.ts';

const macs: FakeMac[] = [];
const recorded = () => recordedMac(macs);

describe('MacBackend (recorded macOS): log off and delete', function () {
  it('logs off GUI, background and setuid processes, counting them before bootout', async () => {
    const { mac, backend } = recorded();
    const { id } = await backend.createDisabled(spec('jtoff'), macPassword());
    const uid = Number(id);
    const procs = [mac.spawn(uid, { domain: 'gui' }), mac.spawn(uid, { domain: 'user' }), mac.spawn(uid), mac.spawn(uid, { euidOnly: true })];
    const bystander = mac.spawn(uid + 1);
    mac.calls.length = 0;
    assert.deepEqual(await backend.logoff('jtoff'), { ended: 4 });
    assert.ok(procs.every((p) => !p.alive()) && bystander.alive());
    assert.deepEqual(lines(mac.calls).slice(-6), [
      `/usr/bin/pgrep -U ${uid}`, `/usr/bin/pgrep -u ${uid}`, `/bin/launchctl bootout gui/${uid}`, `/bin/launchctl bootout user/${uid}`,
      `/usr/bin/pkill -KILL -U ${uid}`, `/usr/bin/pkill -KILL -u ${uid}`,
    ]);
    assert.deepEqual(await backend.logoff('jtoff'), { ended: 0 });
  });

  it('refuses to kill, delete or purge by a uid below 501', async () => {
    const { mac, backend } = recorded();
    for (const [name, uid] of [['jtroot', 0], ['jtsys', 300]] as const) {
      mac.addUser(name, 'jit-access grant=g1', uid);
      mac.groups.set(MARKER_GROUP, mac.groups.get(MARKER_GROUP) ?? { gid: 799, members: new Set() });
      mac.groups.get(MARKER_GROUP)!.members.add(name);
      assert.equal((await backend.lookup(name))?.managed, true);
      const victim = mac.spawn(uid);
      mac.calls.length = 0;
      await rejectsWith(backend.logoff(name), 'COMMAND_FAILED');
      await rejectsWith(backend.delete(name), 'COMMAND_FAILED');
      await rejectsWith(backend.purge({ name: 'jtgone', id: String(uid) }), 'COMMAND_FAILED');
      assert.ok(victim.alive());
      assert.ok(mac.calls.every((c) => c.file === MAC_BIN.dscl || c.file === MAC_BIN.dseditgroup), lines(mac.calls).join('\n'));
      assert.ok(mac.calls.every((c) => c.argv[1] !== '-create' && c.argv[1] !== '-delete' && c.argv[1] !== '-append' && c.argv[1] !== 'edit'));
    }
  });

  it('delete: disables first, refuses while processes run, leaves a kept home to purge, clears every group', async () => {
    const { mac, backend } = recorded();
    const { id } = await backend.createDisabled(spec('jtdel'), macPassword());
    await backend.enable('jtdel', new Date(Date.now() + 3_600_000));
    const p = mac.spawn(Number(id));
    await rejectsWith(backend.delete('jtdel'), 'LOGGED_IN');
    assert.ok(mac.users.has('jtdel'));
    assert.ok(mac.disabled('jtdel') && !mac.isMember('jtdel', 'admin'), 'dead even though not deleted');
    p.kill();
    mac.faults.deleteKeepsHome = true;
    mac.faults.deleteLeavesMemberships = true;
    mac.groups.set('com.apple.access_ssh', { gid: 399, members: new Set(['jtdel']) });
    await backend.delete('jtdel'); // a kept home is purge's business now, not a failed delete
    assert.equal(mac.users.has('jtdel'), false);
    for (const [g, { members }] of mac.groups) assert.equal(members.has('jtdel'), false, g);
    assert.ok(mac.fs.has('/Users/jtdel'));
    await backend.purge({ name: 'jtdel', id });
    assert.equal(mac.fs.has('/Users/jtdel'), false);
  });

  // Item 4: sysadminctl -deleteUser from a root daemon can fail with -14120, keeping the account.
  it('delete: falls back to dscl . -delete when sysadminctl -deleteUser fails (-14120), checks it is gone', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jt14120'), macPassword());
    mac.faults.deleteUser14120 = true;
    await backend.delete('jt14120');
    assert.equal(mac.users.has('jt14120'), false);
    assert.equal(mac.groups.get(MARKER_GROUP)!.members.has('jt14120'), false);
    const ran = lines(mac.calls);
    assert.deepEqual(ran.slice(ran.indexOf('/usr/sbin/sysadminctl -deleteUser jt14120')).filter((l) => !l.includes('-read')), [
      '/usr/sbin/sysadminctl -deleteUser jt14120',
      '/usr/bin/dscl . -delete /Users/jt14120',
      '/usr/bin/dscl . -list /Groups GroupMembership',
      '/usr/bin/dscl . -delete /Groups/jit-managed GroupMembership jt14120',
      '/usr/bin/dscl . -list /Groups GroupMembership',
    ]);
  });

  it('delete: when neither works, says "disabled, not deletable" and keeps it dead and ours for a retry', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtstuck'), macPassword());
    await backend.enable('jtstuck', new Date(Date.now() + 3_600_000));
    mac.faults.deleteUser14120 = true;
    mac.faults.dsclDeleteFails = true;
    await assert.rejects(backend.delete('jtstuck'), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'COMMAND_FAILED');
      assert.match(e.message, /jtstuck disabled, not deletable: sysadminctl .*-14120.*; dscl .*eDSPermissionError/);
      return true;
    });
    assert.ok(mac.disabled('jtstuck') && !mac.isMember('jtstuck', 'admin'));
    assert.deepEqual((await backend.listManaged()).map((i) => i.name), ['jtstuck']);
    mac.faults.dsclDeleteFails = false;
    await backend.delete('jtstuck');
    assert.equal(await backend.lookup('jtstuck'), null);
  });
});

describe('MacBackend (recorded macOS): purge', function () {
  /** A deleted account (uid, name) that left things behind, and a bystander's files. */
  async function leftovers(): Promise<{ mac: FakeMac; backend: ReturnType<typeof recorded>['backend']; uid: number }> {
    const { mac, backend } = recorded();
    const { id } = await backend.createDisabled(spec('jtleft'), macPassword());
    const uid = Number(id);
    mac.addFile('/Users/jtleft/Documents/secret.txt', uid);
    mac.addFile('/Users/jtleft/Library/locked.plist', uid, 'Regular File', true); // uchg
    mac.faults.deleteKeepsHome = true;
    await backend.delete('jtleft');
    mac.faults.deleteKeepsHome = false;
    mac.addFile('/private/tmp/jt-socket', uid);
    mac.mkdir('/private/tmp/jt-dir', uid);
    mac.addFile('/private/tmp/jt-dir/a', uid);
    mac.addFile('/private/tmp/jt-link', uid, 'Symbolic Link'); // → /etc/passwd: only the link goes
    mac.addFile('/private/var/tmp/jt-cache', uid);
    mac.mkdir('/private/var/folders/xy/abc123', uid);
    mac.addFile('/private/var/folders/xy/abc123/T', uid);
    mac.addFile('/private/var/at/jobs/a0001', uid);
    mac.addFile('/private/var/at/tabs/jtleft', 0); // crontab: root's file, named after the user
    mac.addFile('/private/var/mail/jtleft', uid);
    mac.addFile('/private/var/db/sudo/ts/jtleft', 0);
    mac.addFile('/private/tmp/theirs', uid + 1);
    mac.addFile('/private/var/db/sudo/ts/alice', 0);
    mac.mounts.add('/private/tmp/mnt');
    mac.mkdir('/private/tmp/mnt', 0);
    mac.addFile('/private/tmp/mnt/on-another-volume', uid); // find -x: not ours to walk into
    return { mac, backend, uid };
  }

  // Item 5 for macOS: nothing of a deleted account outlives it where the next one could find it.
  it('removes the home, files in the temporary folders, at/cron, mail and sudo leftovers by uid', async () => {
    const { mac, backend, uid } = await leftovers();
    mac.calls.length = 0;
    await backend.purge({ name: 'jtleft', id: String(uid) });
    const left = [...mac.fs].filter(([, e]) => e.uid === uid).map(([p]) => p);
    assert.deepEqual(left, ['/private/tmp/mnt/on-another-volume']);
    for (const p of ['/private/var/at/tabs/jtleft', '/private/var/db/sudo/ts/jtleft', '/Users/jtleft']) assert.ok(!mac.fs.has(p), p);
    for (const p of ['/private/tmp/theirs', '/private/var/db/sudo/ts/alice', '/private/tmp', '/Users']) assert.ok(mac.fs.has(p), p);
    const roots = '/private/tmp /private/var/tmp /private/var/folders /private/var/at /private/var/mail';
    assert.deepEqual(lines(mac.calls), [
      '/usr/bin/dscl . -list /Users UniqueID',
      // What still runs under the uid (a record deleted by someone else while in use).
      `/usr/bin/pkill -KILL -U ${uid}`,
      `/usr/bin/pkill -KILL -u ${uid}`,
      '/usr/bin/stat -f %u:%HT /Users/jtleft',
      '/usr/bin/chflags -R nouchg /Users/jtleft',
      '/bin/rm -rf /Users/jtleft',
      `/usr/bin/find -x ${roots} -user ${uid} -delete`,
      '/bin/rm -f /private/var/db/sudo/ts/jtleft',
      '/bin/rm -f /private/var/at/tabs/jtleft',
      // The backstop timer, in case nobody disarmed it (named after the account, like the above).
      '/bin/launchctl bootout system/com.jit-access.backstop.jtleft',
      '/bin/launchctl print system/com.jit-access.backstop.jtleft',
      '/bin/rm -f /Library/LaunchDaemons/com.jit-access.backstop.jtleft.plist',
      '/usr/bin/stat -f %u:%HT /Library/LaunchDaemons/com.jit-access.backstop.jtleft.plist',
      '/usr/bin/stat -f %u:%HT /Users/jtleft',
      `/usr/bin/find -x ${roots} -user ${uid} -print`,
      '/usr/bin/stat -f %u:%HT /private/var/db/sudo/ts/jtleft',
      '/usr/bin/stat -f %u:%HT /private/var/at/tabs/jtleft',
    ]);
    await backend.purge({ name: 'jtleft', id: String(uid) }); // idempotent
    mac.assertAllModelled();
  });

  it('throws while anything is left, so the caller retries; the retry finishes', async () => {
    const { mac, backend, uid } = await leftovers();
    mac.faults.rmFails.add('/Users/jtleft/Documents/secret.txt');
    mac.faults.rmFails.add('/private/tmp/jt-socket');
    await assert.rejects(backend.purge({ name: 'jtleft', id: String(uid) }), /uid \d+ left: \/Users\/jtleft, \/private\/tmp\/jt-socket/);
    mac.faults.rmFails.clear();
    await backend.purge({ name: 'jtleft', id: String(uid) });
    assert.ok(!mac.fs.has('/Users/jtleft') && !mac.fs.has('/private/tmp/jt-socket'));
  });

  it('touches nothing while an account has that uid again, and nothing named after a new account of that name', async () => {
    const { mac, backend, uid } = await leftovers();
    const before = new Map([...mac.fs].map(([p, e]) => [p, { ...e }]));
    mac.addUser('jtnew', 'Somebody', uid);
    mac.fs.delete('/Users/jtnew');
    mac.calls.length = 0;
    await backend.purge({ name: 'jtleft', id: String(uid) });
    assert.deepEqual(lines(mac.calls), ['/usr/bin/dscl . -list /Users UniqueID']);
    assert.deepEqual(new Map([...mac.fs].map(([p, e]) => [p, { ...e }])), before);

    mac.users.delete('jtnew');
    mac.addUser('jtleft', 'Somebody', uid + 50); // same name, another uid: its home and sudo file are its own
    mac.addFile('/private/var/db/sudo/ts/jtleft', 0);
    await backend.purge({ name: 'jtleft', id: String(uid) });
    assert.ok(mac.fs.has('/Users/jtleft') && mac.fs.has('/private/var/db/sudo/ts/jtleft') && mac.fs.has('/private/var/at/tabs/jtleft'));
    assert.ok(!mac.fs.has('/private/tmp/jt-socket'), 'files of the old uid still go');
  });

  it('leaves a home owned by someone else, and never follows a home that is a symlink', async () => {
    const { mac, backend } = recorded();
    mac.mkdir('/Users/jtother', 4242);
    mac.addFile('/Users/jtlink', 2_001_000_099, 'Symbolic Link');
    await backend.purge({ name: 'jtother', id: '2001000098' });
    await backend.purge({ name: 'jtlink', id: '2001000099' });
    assert.ok(mac.fs.has('/Users/jtother'));
    assert.ok(!mac.fs.has('/Users/jtlink'));
    assert.ok(!lines(mac.calls).some((l) => l.includes('rm -rf /Users/jtlink') || l.includes('chflags -R nouchg /Users/jtlink')));
  });

  it('works through the removal sequence: disable → logoff → delete → purge', async () => {
    const { mac, backend } = recorded();
    const info = await backend.createDisabled(spec('jtseq'), macPassword());
    await backend.enable('jtseq', new Date(Date.now() + 3_600_000));
    const proc = mac.spawn(Number(info.id), { domain: 'gui' });
    mac.addFile('/private/tmp/jtseq.lock', Number(info.id));
    mac.faults.deleteUser14120 = true;
    const steps: string[] = [];
    await removeAccount(backend, { name: 'jtseq', id: info.id }, 'disable', (s, o) => void steps.push(`${s}:${o.existed}:${o.ended ?? ''}`));
    assert.deepEqual(steps, ['disable:true:', 'logoff:true:1', 'delete:true:', 'purge:false:']);
    assert.ok(!proc.alive() && !mac.users.has('jtseq') && !mac.fs.has('/private/tmp/jtseq.lock') && !mac.fs.has('/Users/jtseq'));
  });
});

describe('MacBackend (recorded macOS): dropMarker', function () {
  it('deletes jit-managed once no account is in it, refuses while one is, drops names without a record', async () => {
    const { mac, backend } = recorded();
    await backend.dropMarker(); // no group yet: nothing to do
    await backend.createDisabled(spec('jtkeep'), macPassword());
    mac.groups.get(MARKER_GROUP)!.members.add('jtstale'); // a crash before the record existed
    await rejectsWith(backend.dropMarker(), 'COMMAND_FAILED');
    assert.ok(mac.groups.has(MARKER_GROUP));
    await backend.delete('jtkeep');
    await backend.dropMarker();
    assert.equal(mac.groups.has(MARKER_GROUP), false);
    await backend.dropMarker();
    assert.ok(lines(mac.calls).includes('/usr/bin/dscl . -delete /Groups/jit-managed'));
    mac.assertAllModelled();
  });

  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    const calls = macs.flatMap((m) => m.calls);
    assert.ok(calls.length > 200, `only ${calls.length} commands recorded`);
    assertShellSafe(calls);
    assert.ok(calls.some((c) => c.argv.includes(DISABLED)));
  });
});
