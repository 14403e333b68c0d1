/**
 * The backstop job's script, RUN FOR REAL with this machine's dash and bash (POSIX mode, as
 * macOS's /bin/sh is bash 3.2 in POSIX mode) against the recorded macOS: every tool it calls is a
 * stub at ROOT + its macOS path that asks the FakeMac model (test/support/fakeMacScript.ts), so
 * the model's clock, directory, groups and processes answer, and its effects are checked there.
 *
 * What this proves: the script's logic (the clock, the ownership check, the order of the
 * actions, that no value is ever interpreted, that no tool is found through PATH) under two
 * POSIX shells. What it does NOT prove: that launchd starts it when we expect, or that the Mac's
 * tools answer like the model (⚠️ list in macos-backstop.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertShellSafe, type FakeMac, lines, macPassword, recordedMac, spec } from '../../test/support/fakeMac.ts';
import { runJobOnMac, SHELLS } from '../../test/support/fakeMacScript.ts';
import { BACKSTOP_SCRIPT, backstopLabel } from './macos-backstop.ts';
import { MARKER_GROUP } from './macos.ts';

const macs: FakeMac[] = [];
const END = new Date('2030-03-10T22:00:00.250Z');
const E = 1899410401; // END rounded up to the second
const at = (seconds: number) => E * 1000 + seconds * 1000;

/** An enabled administrator with a backstop armed for END, and processes of its own and a bystander's. */
async function armed(name: string) {
  const { mac, backend } = recordedMac(macs);
  const { id } = await backend.createDisabled(spec(name, 'Administrators', `grant-${name}`, END), macPassword());
  await backend.enable(name, END);
  assert.equal(await backend.armBackstop(name, END), 'timer');
  const uid = Number(id);
  const procs = [mac.spawn(uid, { domain: 'gui' }), mac.spawn(uid, { domain: 'user' }), mac.spawn(uid), mac.spawn(uid, { euidOnly: true })];
  const bystander = mac.spawn(uid + 1);
  const job = mac.launchd.get(backstopLabel(name))!.programArguments;
  mac.calls.length = 0;
  return { mac, backend, uid, procs, bystander, job };
}

/** The actions, by absolute path, in order. */
const actions = (name: string, uid: number) => [
  `/usr/bin/pwpolicy -u ${name} -n /Local/Default -disableuser`,
  `/usr/bin/dscl -plist . -read /Users/${name} AuthenticationAuthority`,
  `/usr/sbin/dseditgroup -o edit -q -d ${name} -t user admin`,
  `/bin/launchctl bootout gui/${uid}`,
  `/bin/launchctl bootout user/${uid}`,
  `/usr/bin/pkill -KILL -U ${uid}`,
  `/usr/bin/pkill -KILL -u ${uid}`,
];
const checks = (name: string) => [
  `/usr/bin/dscl -plist . -read /Users/${name} UniqueID`,
  `/usr/bin/dscl -plist . -read /Users/${name} RealName`,
  `/usr/bin/dscl -plist . -read /Groups/${MARKER_GROUP} GroupMembership`,
];
/** Commands that change something. */
const MUTATING = /pwpolicy|dseditgroup -o edit|launchctl|pkill|dscl .* -(append|create|delete)/;

describe('the macOS backstop script, run for real against the recorded macOS', function () {
  this.timeout(120_000);

  it('does nothing before the last two minutes: reads the clock and exits', async () => {
    const { mac, job, procs } = await armed('jtearly');
    mac.now = at(-121);
    const r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s']);
    assert.ok(!mac.disabled('jtearly') && procs.every((p) => p.alive()));
  });

  it('inside the last two minutes: waits, second by second, and acts in the end second, never before', async () => {
    const { mac, job, uid, procs, bystander } = await armed('jtwait');
    mac.now = at(-2.5);
    const r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), [
      '/bin/date +%s', '/bin/sleep 1', '/bin/date +%s', '/bin/sleep 1', '/bin/date +%s', '/bin/sleep 1', '/bin/date +%s',
      ...checks('jtwait'), ...actions('jtwait', uid),
    ]);
    // The model's clock moves only with sleep: everything after the last one ran at E + 0.5 s.
    assert.equal(mac.now, at(0.5));
    assert.ok(mac.now >= END.getTime());
    assert.ok(mac.disabled('jtwait') && !mac.isMember('jtwait', 'admin') && !mac.authenticationAllowed('jtwait'));
    assert.ok(procs.every((p) => !p.alive()) && bystander.alive());
    mac.assertAllModelled();
  });

  for (const shell of SHELLS) {
    it(`after the end (the Mac was asleep or off): acts at once, tools by absolute path only (${shell})`, async () => {
      const { mac, job, uid, procs, bystander } = await armed('jtlate');
      mac.now = at(3600);
      const r = await runJobOnMac(mac, job, shell);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...checks('jtlate'), ...actions('jtlate', uid)]);
      assert.ok(mac.disabled('jtlate') && !mac.isMember('jtlate', 'admin'));
      assert.ok(procs.every((p) => !p.alive()) && bystander.alive());
    });
  }

  it('touches nothing but the account it was armed for: same name, uid, tag and marker group', async () => {
    const cases: [string, (mac: FakeMac, name: string) => void][] = [
      ['another uid', (mac, n) => mac.user(n).attrs.set('UniqueID', ['2001000999'])],
      ['two uids', (mac, n) => mac.user(n).attrs.set('UniqueID', [mac.attr(n, 'UniqueID')!, '2001000999'])],
      ['not our tag', (mac, n) => mac.user(n).attrs.set('RealName', ['Somebody'])],
      ['a tag and another name', (mac, n) => mac.user(n).attrs.set('RealName', ['jit-access grant=g1', 'Somebody'])],
      ['a tag with a bad grant id', (mac, n) => mac.user(n).attrs.set('RealName', ['jit-access grant=g 1'])],
      ['not in jit-managed', (mac, n) => mac.groups.get(MARKER_GROUP)!.members.delete(n)],
      ['no jit-managed group', (mac) => mac.groups.delete(MARKER_GROUP)],
      ['deleted', (mac, n) => mac.users.delete(n)],
      ['someone else’s account of that name now', (mac, n) => { mac.users.delete(n); mac.addUser(n, 'Somebody'); }],
    ];
    for (const [what, change] of cases) {
      const { mac, job, procs } = await armed('jtother');
      change(mac, 'jtother');
      mac.now = at(60);
      const r = await runJobOnMac(mac, job);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      const ran = lines(mac.calls);
      assert.ok(!ran.some((l) => MUTATING.test(l)), `${what}:\n${ran.join('\n')}`);
      assert.ok(procs.every((p) => p.alive()), what);
    }
  });

  it('falls back to dscl when pwpolicy -disableuser changes nothing', async () => {
    const { mac, job } = await armed('jtpwfail');
    mac.faults.disableuserIgnored = true;
    mac.now = at(1);
    const r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(lines(mac.calls).includes("/usr/bin/dscl . -append /Users/jtpwfail AuthenticationAuthority ';DisabledUser;'"));
    assert.ok(mac.disabled('jtpwfail'));
  });

  it('keeps the account dead at every later run until disarmed, and does nothing once it is deleted', async () => {
    const { mac, backend, job, uid } = await armed('jtagain');
    mac.now = at(5);
    await runJobOnMac(mac, job);
    const cron = mac.spawn(uid); // e.g. started by its crontab after the first run
    mac.now = at(65);
    await runJobOnMac(mac, job);
    assert.equal(cron.alive(), false);
    await backend.delete('jtagain');
    mac.calls.length = 0;
    await runJobOnMac(mac, job);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s', '/usr/bin/dscl -plist . -read /Users/jtagain UniqueID']);
  });

  it('refuses malformed or hostile arguments without running anything', async () => {
    const { mac, job } = await armed('jthostile');
    const marker = path.join(os.tmpdir(), `jit-backstop-${randomBytes(6).toString('hex')}`);
    const [name, uid, end] = job.slice(4) as [string, string, string];
    const bad: [string, string, string][] = [
      [`a$(touch ${marker})`, uid, end], [`a\`touch ${marker}\``, uid, end], ['a;b', uid, end], ['Root', uid, end], ['', uid, end], ['a'.repeat(21), uid, end],
      [name, '0', end], [name, '500', end], [name, '0501', end], [name, `${uid};x`, end], [name, '', end], [name, '99999999999', end],
      [name, uid, ''], [name, uid, `$(touch ${marker})`], [name, uid, '-1'], [name, uid, '1e9'],
    ];
    mac.now = at(60);
    for (const args of bad) {
      const r = await runJobOnMac(mac, [...job.slice(0, 4), ...args]);
      assert.notEqual(r.code, 0, args.join(' '));
    }
    const r = await runJobOnMac(mac, job.slice(0, 6)); // an argument missing
    assert.notEqual(r.code, 0);
    assert.deepEqual(mac.calls, []);
    assert.equal(existsSync(marker), false);
    assert.equal(job[2], BACKSTOP_SCRIPT);
  });

  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    const calls = macs.flatMap((m) => m.calls);
    assert.ok(calls.some((c) => c.file === '/usr/bin/pkill'));
    assertShellSafe(calls);
  });
});
