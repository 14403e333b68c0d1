/**
 * The restore timer of an elevate-account grant (a launchd daemon that removes the grant's sudo
 * drop-in and takes the account out of admin at the end even if the agent is dead then) against
 * the RECORDED macOS
 * (test/support/fakeMac.ts): arming, re-arming, disarming, dropping, and what is refused. What the
 * job's script does when it runs is in macos-restore-script.test.ts.
 */
import assert from 'node:assert/strict';
import { assertShellSafe, type FakeMac, firingMinutes, lines, macPassword, readPlistXml, recordedMac, spec } from '../../test/support/fakeMac.ts';
import { rejectsWith } from './contract.ts';
import type { RestoreSpec } from './elevation.ts';
import { backstopLabel, backstopPlistPath } from './macos-backstop.ts';
import { MacRestoreTimers, RESTORE_SCRIPT, restoreLabel, restorePlistPath } from './macos-restore.ts';

const macs: FakeMac[] = [];
const END = new Date('2030-03-10T22:00:00.250Z');
const END_EPOCH = '1899410401'; // rounded up: never early
const GRANT = '3f2b8c1e-9d4a-4e6b-8f00-0123456789ab';

/** A person's own account (not ours), and the restore timers of its Mac. */
function person(name = 'maria') {
  const { mac, backend } = recordedMac(macs);
  mac.addUser(name, 'Maria');
  mac.groups.get('admin')!.members.add(name); // what the elevation did
  const timers = backend.elevation.restoreTimers;
  return { mac, backend, timers, uid: String(mac.uidOf(name)) };
}
const restore = (s: Partial<RestoreSpec> = {}): RestoreSpec => ({ grantId: GRANT, name: 'maria', group: 'Administrators', at: END, logoff: false, membership: true, sudo: false, ...s });
const ours = (mac: FakeMac) => [...mac.launchd.keys()].filter((l) => l.startsWith('com.jit-access.restore.'));

describe('MacElevation (recorded macOS): restore timers', function () {
  it('arms a launchd daemon: root:wheel 0644 plist in /Library/LaunchDaemons, bootstrapped, read back', async () => {
    const { mac, timers, uid } = person();
    assert.ok(timers instanceof MacRestoreTimers);
    mac.calls.length = 0;
    await timers.arm(restore());
    const label = `com.jit-access.restore.${GRANT}`;
    const file = `/Library/LaunchDaemons/${label}.plist`;
    assert.equal(restoreLabel(GRANT), label);
    assert.equal(restorePlistPath(GRANT), file);
    assert.deepEqual(lines(mac.calls).map((l) => l.replace(/\/jit-launchd-\w+\//, '/jit-launchd-X/')), [
      '/usr/bin/dscl -plist . -read /Users/maria UniqueID PrimaryGroupID UserShell NFSHomeDirectory RealName AuthenticationAuthority jitAccessGroup',
      `/bin/launchctl bootout system/${label}`, // replaces an earlier one (none here: 113)
      `/bin/launchctl print system/${label}`, // gone
      `/usr/bin/install -S -m 0644 -o root -g wheel /tmp/jit-launchd-X/${label}.plist ${file}`,
      `/bin/launchctl bootstrap system ${file}`,
      `/bin/launchctl print system/${label}`,
      `/bin/cat ${file}`,
    ]);
    const entry = mac.fs.get(file)!;
    assert.deepEqual([entry.uid, entry.gid, entry.mode?.toString(8)], [0, 0, '644']);
    const job = mac.launchd.get(label)!;
    assert.equal(job.path, file);
    // Parsed with fast-xml-parser, independently of the backend's own plist code.
    const plist = readPlistXml(entry.content!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(plist).sort(), ['Label', 'ProcessType', 'ProgramArguments', 'RunAtLoad', 'StartCalendarInterval']);
    assert.equal(plist.Label, label);
    assert.deepEqual(plist.ProgramArguments, ['/bin/sh', '-c', RESTORE_SCRIPT, 'jit', GRANT, 'maria', uid, 'admin', END_EPOCH, '0', '1', '0']);
    assert.equal(plist.RunAtLoad, true, 'runs at load: at boot, and at once when armed after the end');
    assert.equal(plist.ProcessType, 'Interactive');
    assert.deepEqual(firingMinutes(job), [...Array(60).keys()], 'every minute, in any time zone');
    assert.equal(job.starts, 1, 'RunAtLoad');
    assert.equal(mac.isMember('maria', 'admin'), true, 'arming changes no membership');
    mac.assertAllModelled();
  });

  it('passes logoff as 1, and the account’s own uid whatever its name', async () => {
    const { mac, timers } = person('j.doe-2');
    mac.addUser('zed', 'Zed', 4_000_000_000);
    await timers.arm(restore({ name: 'j.doe-2', logoff: true }));
    await timers.arm(restore({ grantId: 'g2', name: 'zed' }));
    assert.deepEqual(mac.launchd.get(restoreLabel(GRANT))!.programArguments.slice(4), [GRANT, 'j.doe-2', String(mac.uidOf('j.doe-2')), 'admin', END_EPOCH, '1', '1', '0']);
    assert.deepEqual(mac.launchd.get(restoreLabel('g2'))!.programArguments.slice(4), ['g2', 'zed', '4000000000', 'admin', END_EPOCH, '0', '1', '0']);
  });

  it('passes MEMBERSHIP and SUDO from the spec, in the job and in its plist file', async () => {
    const { mac, timers, uid } = person();
    const cases: [Partial<RestoreSpec>, string[]][] = [
      [{ grantId: 'g-both', membership: true, sudo: true, logoff: true }, ['1', '1', '1']],
      [{ grantId: 'g-sudo', membership: false, sudo: true }, ['0', '0', '1']],
      [{ grantId: 'g-member', membership: true, sudo: false }, ['0', '1', '0']],
      [{ grantId: 'g.dotted', membership: false, sudo: true }, ['0', '0', '1']],
    ];
    for (const [s, flags] of cases) {
      await timers.arm(restore(s));
      const args = [s.grantId!, 'maria', uid, 'admin', END_EPOCH, ...flags];
      assert.deepEqual(mac.launchd.get(restoreLabel(s.grantId!))!.programArguments, ['/bin/sh', '-c', RESTORE_SCRIPT, 'jit', ...args], s.grantId);
      const plist = readPlistXml(mac.fs.get(restorePlistPath(s.grantId!))!.content!) as { ProgramArguments: string[] };
      assert.deepEqual(plist.ProgramArguments.slice(4), args, `${s.grantId}: the file says the same`);
    }
    assert.equal(mac.isMember('maria', 'admin'), true, 'arming changes no membership');
    mac.assertAllModelled();
  });

  it('refuses a spec with neither the membership nor sudo to take away, running nothing', async () => {
    const { mac, timers } = person();
    mac.calls.length = 0;
    await rejectsWith(timers.arm(restore({ membership: false, sudo: false })), 'COMMAND_FAILED');
    await rejectsWith(timers.arm(restore({ membership: false, sudo: false, logoff: true })), 'COMMAND_FAILED');
    assert.deepEqual(mac.calls, []);
    assert.equal(mac.launchd.size, 0);
    assert.equal(mac.fs.has(restorePlistPath(GRANT)), false);
  });

  it('arming again replaces the job: one job, the new end and flags', async () => {
    const { mac, timers } = person();
    await timers.arm(restore());
    const later = new Date('2030-03-11T08:30:00Z');
    await timers.arm(restore({ at: later, logoff: true, sudo: true }));
    assert.deepEqual(ours(mac), [restoreLabel(GRANT)]);
    assert.deepEqual(mac.launchd.get(restoreLabel(GRANT))!.programArguments.slice(8), [String(later.getTime() / 1000), '1', '1', '1']);
    const plist = readPlistXml(mac.fs.get(restorePlistPath(GRANT))!.content!) as { ProgramArguments: string[] };
    assert.deepEqual(plist.ProgramArguments.slice(8), [String(later.getTime() / 1000), '1', '1', '1'], 'the file says the same');
    assert.equal(lines(mac.calls).filter((l) => l === `/bin/launchctl bootout system/${restoreLabel(GRANT)}`).length, 2);
  });

  it('disarm removes the job and its file, read back; a missing one is fine', async () => {
    const { mac, timers } = person();
    await timers.arm(restore());
    await timers.arm(restore({ grantId: 'other-grant' }));
    mac.calls.length = 0;
    await timers.disarm(GRANT);
    const label = restoreLabel(GRANT);
    const file = restorePlistPath(GRANT);
    assert.equal(mac.launchd.has(label), false);
    assert.equal(mac.fs.has(file), false);
    assert.deepEqual(lines(mac.calls), [
      `/bin/launchctl bootout system/${label}`,
      `/bin/launchctl print system/${label}`,
      `/bin/rm -f ${file}`,
      `/usr/bin/stat -f %u:%HT ${file}`,
    ]);
    assert.deepEqual(ours(mac), [restoreLabel('other-grant')], 'another grant’s job stays');
    await timers.disarm(GRANT);
    await timers.disarm('never-armed');
    await rejectsWith(timers.disarm('a$(id)'), 'INVALID_NAME');
    await rejectsWith(timers.disarm('../x'), 'INVALID_NAME');
    mac.assertAllModelled();
  });

  it('disarm throws when the file stays, and succeeds once it can go', async () => {
    const { mac, timers } = person();
    await timers.arm(restore());
    mac.faults.rmFails.add(restorePlistPath(GRANT));
    await rejectsWith(timers.disarm(GRANT), 'COMMAND_FAILED');
    mac.faults.rmFails.clear();
    await timers.disarm(GRANT);
    assert.equal(mac.fs.has(restorePlistPath(GRANT)), false);
  });

  it('drop removes every restore job and plist of ours, loaded or not, and leaves the backstops and anything else', async () => {
    const { mac, backend, timers } = person();
    await timers.arm(restore());
    await timers.arm(restore({ grantId: 'grant-2', logoff: true }));
    mac.addFile(restorePlistPath('stale-one'), 0); // left by a crash: a file, no job
    mac.addFile('/Library/LaunchDaemons/com.example.other.plist', 0);
    mac.addFile('/Library/LaunchDaemons/com.jit-access.restore.a b.plist', 0); // not a name of ours
    await backend.createDisabled(spec('jtkept', 'Users', 'g-kept', END), macPassword());
    await backend.enable('jtkept', END);
    await backend.armBackstop('jtkept', END);
    mac.calls.length = 0;
    await timers.drop();
    assert.deepEqual(ours(mac), []);
    assert.deepEqual([...mac.launchd.keys()], [backstopLabel('jtkept')]);
    assert.deepEqual(mac.under('/Library/LaunchDaemons').sort(), [
      '/Library/LaunchDaemons',
      backstopPlistPath('jtkept'),
      '/Library/LaunchDaemons/com.example.other.plist',
      '/Library/LaunchDaemons/com.jit-access.restore.a b.plist',
    ].sort());
    const ran = lines(mac.calls);
    assert.equal(ran[0], '/bin/ls /Library/LaunchDaemons');
    assert.deepEqual(ran.filter((l) => l.startsWith('/bin/rm')), ['grant-2', GRANT, 'stale-one'].sort().map((g) => `/bin/rm -f ${restorePlistPath(g)}`).sort());
    assert.equal(mac.isMember('maria', 'admin'), true, 'dropping a timer changes no membership');
    await timers.drop(); // nothing left: fine
    mac.assertAllModelled();
  });

  it('refuses a bad grant id, a name the job would refuse, a missing or low-uid account and a group other than Administrators, arming nothing', async () => {
    const { mac, timers } = person();
    mac.addUser('lowuid', 'Low', 300);
    mac.addUser('Maria2', 'Capital');
    mac.calls.length = 0;
    for (const grantId of ['', 'a b', 'a/b', '../x', 'a$(id)', 'g'.repeat(65)]) await rejectsWith(timers.arm(restore({ grantId })), 'INVALID_NAME');
    for (const name of ['Maria2', '_www', '-rf', '.hidden', 'a;b', 'a'.repeat(33), '']) await rejectsWith(timers.arm(restore({ name })), 'INVALID_NAME');
    for (const group of ['Users', 'Power Users'] as const) await rejectsWith(timers.arm(restore({ group })), 'UNSUPPORTED_GROUP');
    assert.deepEqual(mac.calls, [], 'all refused before any command');
    await rejectsWith(timers.arm(restore({ name: 'nobody' })), 'NOT_FOUND');
    await rejectsWith(timers.arm(restore({ name: 'lowuid' })), 'COMMAND_FAILED');
    await rejectsWith(timers.arm(restore({ at: new Date('nonsense') })), 'COMMAND_FAILED');
    assert.equal(mac.launchd.size, 0);
    assert.ok(!lines(mac.calls).some((l) => l.includes('install') || l.includes('bootstrap')));
    // The longest name the job takes, and the person's own account: both armed.
    mac.addUser('a'.repeat(32), 'Long');
    await timers.arm(restore({ grantId: 'g-long', name: 'a'.repeat(32) }));
    await timers.arm(restore());
    assert.deepEqual(ours(mac).sort(), [restoreLabel(GRANT), restoreLabel('g-long')].sort());
  });

  it('throws when launchd does not take the job, or it reads back otherwise, and leaves no file', async () => {
    for (const fault of ['bootstrapFails', 'launchdForgets', 'plistReadsBackChanged'] as const) {
      const { mac, timers } = person();
      mac.faults[fault] = true;
      await rejectsWith(timers.arm(restore()), 'COMMAND_FAILED');
      mac.faults[fault] = false;
      assert.equal(mac.fs.has(restorePlistPath(GRANT)), false, fault);
      assert.equal(mac.launchd.size, 0, fault);
    }
    const { mac, timers } = person();
    mac.faults.notRoot = true;
    await rejectsWith(timers.arm(restore()), 'ACCESS_DENIED');
    assert.equal(mac.launchd.size, 0);
  });

  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    const calls = macs.flatMap((m) => m.calls);
    assert.ok(calls.some((c) => c.argv[0] === 'bootstrap'));
    assertShellSafe(calls);
  });
});
