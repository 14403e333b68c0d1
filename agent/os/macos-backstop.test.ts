/**
 * The backstop timer (a launchd daemon that makes the account dead at the grant's end even if
 * the agent is not running then) against the RECORDED macOS (test/support/fakeMac.ts): arming,
 * re-arming, disarming, and that purge and dropMarker leave none of ours. What the job's
 * script does when it runs is in macos-backstop-script.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  assertShellSafe,
  type FakeMac,
  firingMinutes,
  lines,
  macPassword,
  readPlistXml,
  recordedMac,
  spec,
} from '../../test/support/fakeMac.ts';
import { bashSyntaxError, bashWords, shellLine } from '../../test/support/shellQuote.ts';
import { removeAccount } from '../removal.ts';
import { rejectsWith } from './contract.ts';
import { BACKSTOP_SCRIPT, backstopLabel, backstopPlistPath } from './macos-backstop.ts';
import { MARKER_GROUP } from './macos.ts';

const macs: FakeMac[] = [];
const recorded = () => recordedMac(macs);
const END = new Date('2030-03-10T22:00:00.250Z');
const END_EPOCH = '1899410401'; // rounded up: never early

/** A managed, enabled account and its uid. */
async function enabled(name: string, group: 'Administrators' | 'Users' = 'Administrators') {
  const r = recorded();
  const { id } = await r.backend.createDisabled(spec(name, group, `grant-${name}`, END), macPassword());
  await r.backend.enable(name, END);
  r.mac.calls.length = 0;
  return { ...r, uid: id };
}

describe('MacBackend (recorded macOS): backstop timer', function () {
  it('arms a launchd daemon: root:wheel 0644 plist in /Library/LaunchDaemons, bootstrapped, read back', async () => {
    const { mac, backend, uid } = await enabled('jtarm');
    assert.equal(await backend.armBackstop('jtarm', END), 'timer');
    const label = 'com.jit-access.backstop.jtarm';
    const file = `/Library/LaunchDaemons/${label}.plist`;
    assert.equal(backstopLabel('jtarm'), label);
    assert.equal(backstopPlistPath('jtarm'), file);
    assert.deepEqual(lines(mac.calls).map((l) => l.replace(/\/jit-launchd-\w+\//, '/jit-launchd-X/')), [
      '/usr/bin/dscl -plist . -read /Users/jtarm UniqueID PrimaryGroupID UserShell NFSHomeDirectory RealName AuthenticationAuthority jitAccessGroup',
      '/usr/sbin/dseditgroup -o checkmember -m jtarm admin',
      '/usr/bin/dscl -plist . -read /Groups/jit-managed GroupMembership',
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
    assert.deepEqual(plist.ProgramArguments, ['/bin/sh', '-c', BACKSTOP_SCRIPT, 'jit', 'jtarm', uid, END_EPOCH]);
    assert.equal(plist.RunAtLoad, true, 'runs at load: at boot, and at once when armed after the end');
    assert.equal(plist.ProcessType, 'Interactive');
    assert.deepEqual(firingMinutes(job), [...Array(60).keys()], 'every minute, in any time zone');
    assert.equal(job.starts, 1, 'RunAtLoad');
    mac.assertAllModelled();
  });

  it('keeps the script constant: the same text for every account, values only as arguments; sh -n and bash -n', async () => {
    const a = await enabled('jtconst1');
    const b = await enabled('jtconst2', 'Users');
    await a.backend.armBackstop('jtconst1', END);
    await b.backend.armBackstop('jtconst2', new Date('2031-01-01T00:00:00Z'));
    const argsOf = (mac: FakeMac, name: string) => mac.launchd.get(backstopLabel(name))!.programArguments;
    const [x, y] = [argsOf(a.mac, 'jtconst1'), argsOf(b.mac, 'jtconst2')];
    assert.equal(x[2], BACKSTOP_SCRIPT);
    assert.equal(y[2], BACKSTOP_SCRIPT);
    for (const value of ['jtconst1', 'jtconst2', a.uid, b.uid, END_EPOCH, '1924992000', 'grant-']) assert.ok(!BACKSTOP_SCRIPT.includes(value), `${value} in the script`);
    assert.ok(!/\$\{?(?:[5-9]|\d\d)/.test(BACKSTOP_SCRIPT), 'only $1-$4 are read');
    for (const shell of [['dash', '-n'], ['bash', '--posix', '-n'], ['bash', '-n']]) {
      const r = spawnSync(shell[0]!, shell.slice(1), { input: BACKSTOP_SCRIPT, encoding: 'utf8' });
      assert.equal(r.status, 0, `${shell.join(' ')}: ${r.stderr}`);
    }
    // The job's whole command line, as a human would paste it, is one word per argument.
    const line = shellLine(x);
    assert.equal(bashSyntaxError(line), null);
    assert.deepEqual(bashWords([line]), [x]);
  });

  it('arming again replaces the job: one job, the new end', async () => {
    const { mac, backend } = await enabled('jtrearm');
    await backend.armBackstop('jtrearm', END);
    const later = new Date('2030-03-11T08:30:00Z');
    assert.equal(await backend.armBackstop('jtrearm', later), 'timer');
    const ours = [...mac.launchd.keys()].filter((l) => l.startsWith('com.jit-access.backstop.'));
    assert.deepEqual(ours, ['com.jit-access.backstop.jtrearm']);
    assert.equal(mac.launchd.get(ours[0]!)!.programArguments.at(-1), String(later.getTime() / 1000));
    const ran = lines(mac.calls);
    assert.equal(ran.filter((l) => l === '/bin/launchctl bootout system/com.jit-access.backstop.jtrearm').length, 2);
  });

  it('disarm removes the job and its file, read back; a missing one is fine', async () => {
    const { mac, backend } = await enabled('jtdisarm');
    await backend.armBackstop('jtdisarm', END);
    mac.calls.length = 0;
    await backend.disarmBackstop('jtdisarm');
    const label = 'com.jit-access.backstop.jtdisarm';
    const file = backstopPlistPath('jtdisarm');
    assert.equal(mac.launchd.has(label), false);
    assert.equal(mac.fs.has(file), false);
    assert.deepEqual(lines(mac.calls), [
      `/bin/launchctl bootout system/${label}`,
      `/bin/launchctl print system/${label}`,
      `/bin/rm -f ${file}`,
      `/usr/bin/stat -f %u:%HT ${file}`,
    ]);
    await backend.disarmBackstop('jtdisarm');
    await backend.disarmBackstop('jtneverarmed');
    await rejectsWith(backend.disarmBackstop('a$(id)'), 'INVALID_NAME');
    mac.assertAllModelled();
  });

  it('refuses a missing, unmarked or low-uid account and a hostile name, arming nothing', async () => {
    const { mac, backend } = recorded();
    await rejectsWith(backend.armBackstop('jtnobody', END), 'NOT_FOUND');
    mac.addUser('jtforeign', 'Somebody', 2_001_000_500);
    await rejectsWith(backend.armBackstop('jtforeign', END), 'NOT_MANAGED');
    mac.addUser('jtlow', 'jit-access grant=g1', 300);
    mac.groups.set(MARKER_GROUP, { gid: 799, members: new Set(['jtlow']) });
    await rejectsWith(backend.armBackstop('jtlow', END), 'COMMAND_FAILED');
    await rejectsWith(backend.armBackstop('a;id', END), 'INVALID_NAME');
    assert.equal(mac.launchd.size, 0);
    assert.ok(!lines(mac.calls).some((l) => l.includes('install') || l.includes('bootstrap')));
  });

  it('throws when launchd does not take the job, or it reads back otherwise, and leaves no file', async () => {
    for (const fault of ['bootstrapFails', 'launchdForgets', 'plistReadsBackChanged'] as const) {
      const { mac, backend } = await enabled('jtrefused');
      mac.faults[fault] = true;
      await rejectsWith(backend.armBackstop('jtrefused', END), 'COMMAND_FAILED');
      mac.faults[fault] = false;
      assert.equal(mac.fs.has(backstopPlistPath('jtrefused')), false, fault);
      assert.equal(mac.launchd.size, 0, fault);
    }
    const { mac, backend } = await enabled('jtnoroot');
    mac.faults.notRoot = true;
    await rejectsWith(backend.armBackstop('jtnoroot', END), 'ACCESS_DENIED');
    await rejectsWith(backend.armBackstop('jtnoroot', new Date('nonsense')), 'COMMAND_FAILED');
  });

  it('leaves no backstop of ours after the removal sequence, purge or dropMarker', async () => {
    const { mac, backend, uid } = await enabled('jtgone');
    await backend.armBackstop('jtgone', END);
    await removeAccount(backend, { name: 'jtgone', id: uid }, 'disable'); // purge disarms, whoever forgot to
    assert.equal(mac.launchd.size, 0);
    assert.equal(mac.fs.has(backstopPlistPath('jtgone')), false);

    // A backstop left by a crash, for a name whose record is gone: purge removes it.
    await backend.createDisabled(spec('jtcrash', 'Users', 'g2', END), macPassword());
    await backend.armBackstop('jtcrash', END);
    const crashUid = String(mac.uidOf('jtcrash'));
    mac.users.delete('jtcrash');
    await backend.purge({ name: 'jtcrash', id: crashUid });
    assert.equal(mac.fs.has(backstopPlistPath('jtcrash')), false);

    // A new account of the same name owns its own backstop: an old purge leaves it.
    await backend.createDisabled(spec('jtcrash', 'Users', 'g3', END), macPassword());
    await backend.armBackstop('jtcrash', END);
    await backend.purge({ name: 'jtcrash', id: crashUid });
    assert.ok(mac.launchd.has(backstopLabel('jtcrash')) && mac.fs.has(backstopPlistPath('jtcrash')));
    await backend.delete('jtcrash');

    // Uninstall: every plist of ours goes (loaded or not), anything else in the folder stays.
    mac.addFile('/Library/LaunchDaemons/com.example.other.plist', 0);
    mac.addFile(backstopPlistPath('jtstale'), 0);
    await backend.dropMarker();
    assert.equal(mac.groups.has(MARKER_GROUP), false);
    assert.equal(mac.launchd.size, 0);
    assert.deepEqual(mac.under('/Library/LaunchDaemons'), ['/Library/LaunchDaemons', '/Library/LaunchDaemons/com.example.other.plist']);
    mac.assertAllModelled();
  });

  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    const calls = macs.flatMap((m) => m.calls);
    assert.ok(calls.some((c) => c.argv[0] === 'bootstrap'));
    assertShellSafe(calls);
  });
});
