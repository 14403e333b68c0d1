/**
 * The restore job's script, RUN FOR REAL with this machine's dash and bash (POSIX mode, as
 * macOS's /bin/sh is bash 3.2 in POSIX mode) against the recorded macOS: every tool it calls is a
 * stub at ROOT + its macOS path that asks the FakeMac model (test/support/fakeMacScript.ts), so
 * the model's clock, directory, groups, processes and launchd answer, and its effects are
 * checked there.
 *
 * What this proves: the script's logic (the clock, the uid check, the order of the actions, that
 * it acts once and removes itself, that no value is ever interpreted, that no tool is found
 * through PATH) under two POSIX shells. What it does NOT prove: that launchd starts it when we
 * expect, or that the Mac's tools answer like the model (⚠️ lists in macos-backstop.ts and
 * macos-restore-script.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertShellSafe, type FakeMac, lines, recordedMac } from '../../test/support/fakeMac.ts';
import { runJobOnMac, SHELLS } from '../../test/support/fakeMacScript.ts';
import { bashSyntaxError, bashWords, shellLine } from '../../test/support/shellQuote.ts';
import { RESTORE_SCRIPT, restoreLabel, restorePlistPath } from './macos-restore.ts';

const macs: FakeMac[] = [];
const END = new Date('2030-03-10T22:00:00.250Z');
const E = 1899410401; // END rounded up to the second
const at = (seconds: number) => E * 1000 + seconds * 1000;
const GRANT = '3f2b8c1e-9d4a-4e6b-8f00-0123456789ab';

/** A person in admin (as the elevation left them) with a restore job armed for END, their processes, a bystander's. */
async function armed(name: string, logoff: boolean, grantId = GRANT, uid?: number) {
  const { mac, backend } = recordedMac(macs);
  mac.addUser(name, 'A Person', uid);
  await backend.elevation.addMember(name, 'Administrators');
  await backend.elevation.restoreTimers.arm({ grantId, name, group: 'Administrators', at: END, logoff });
  const id = mac.uidOf(name)!;
  const procs = [mac.spawn(id, { domain: 'gui' }), mac.spawn(id, { domain: 'user' }), mac.spawn(id), mac.spawn(id, { euidOnly: true })];
  const bystander = mac.spawn(id + 1);
  const job = mac.launchd.get(restoreLabel(grantId))!.programArguments;
  mac.calls.length = 0;
  return { mac, backend, uid: id, procs, bystander, job };
}

const check = (name: string) => [
  `/usr/bin/stat -f %u:%HT ${restorePlistPath(GRANT)}`,
  `/usr/bin/dscl -plist . -read /Users/${name} UniqueID`,
];
const remove = (name: string) => [
  '/usr/bin/dscl -plist . -read /Groups/admin GroupMembership',
  `/usr/sbin/dseditgroup -o edit -q -d ${name} -t user admin`,
  '/usr/bin/dscl -plist . -read /Groups/admin GroupMembership',
];
const logoff = (uid: number) => [`/bin/launchctl bootout gui/${uid}`, `/bin/launchctl bootout user/${uid}`, `/usr/bin/pkill -KILL -U ${uid}`, `/usr/bin/pkill -KILL -u ${uid}`];
const leave = [`/bin/rm -f ${restorePlistPath(GRANT)}`, `/bin/launchctl bootout system/${restoreLabel(GRANT)}`];
/** Commands that change something. */
const MUTATING = /dseditgroup -o edit|launchctl bootout (gui|user)|pkill|dscl .* -(append|create|delete)/;
/** The job removed itself: no plist, not loaded. */
const gone = (mac: FakeMac) => !mac.fs.has(restorePlistPath(GRANT)) && !mac.launchd.has(restoreLabel(GRANT));

describe('the macOS restore script, run for real against the recorded macOS', function () {
  this.timeout(120_000);

  it('does nothing before the last two minutes: reads the clock and exits, and stays', async () => {
    const { mac, job, procs } = await armed('early', true);
    mac.now = at(-121);
    const r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s']);
    assert.ok(mac.isMember('early', 'admin') && procs.every((p) => p.alive()));
    assert.ok(mac.launchd.has(restoreLabel(GRANT)) && mac.fs.has(restorePlistPath(GRANT)));
  });

  it('inside the last two minutes: waits, second by second, and acts in the end second, never before', async () => {
    const { mac, job, procs } = await armed('waiter', false);
    mac.now = at(-2.5);
    const r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), [
      '/bin/date +%s', '/bin/sleep 1', '/bin/date +%s', '/bin/sleep 1', '/bin/date +%s', '/bin/sleep 1', '/bin/date +%s',
      ...check('waiter'), ...remove('waiter'), ...leave,
    ]);
    // The model's clock moves only with sleep: everything after the last one ran at E + 0.5 s.
    assert.equal(mac.now, at(0.5));
    assert.ok(!mac.isMember('waiter', 'admin') && mac.isMember('waiter', 'staff'));
    assert.ok(procs.every((p) => p.alive()), 'logoff 0: no session ended');
    assert.ok(gone(mac));
    assert.ok(mac.users.has('waiter'), 'the account itself is kept');
    mac.assertAllModelled();
  });

  for (const shell of SHELLS) {
    it(`after the end with logoff: out of admin, sessions and processes ended, then gone, tools by absolute path only (${shell})`, async () => {
      const { mac, job, uid, procs, bystander } = await armed('late.one-2', true);
      mac.now = at(3600);
      const r = await runJobOnMac(mac, job, shell);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('late.one-2'), ...remove('late.one-2'), ...logoff(uid), ...leave]);
      assert.ok(!mac.isMember('late.one-2', 'admin'));
      assert.ok(procs.every((p) => !p.alive()) && bystander.alive());
      assert.ok(gone(mac));
      assert.ok(!mac.disabled('late.one-2'), 'a person’s account is not disabled');
    });

    it(`after the end without logoff: out of admin, no session touched (${shell})`, async () => {
      const { mac, job, procs } = await armed('nologoff', false);
      mac.now = at(60);
      const r = await runJobOnMac(mac, job, shell);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('nologoff'), ...remove('nologoff'), ...leave]);
      assert.ok(!mac.isMember('nologoff', 'admin') && procs.every((p) => p.alive()) && gone(mac));
    });
  }

  it('acts once: an admin made again later stays admin, even if the job was still run', async () => {
    const { mac, job } = await armed('once', true);
    mac.now = at(5);
    await runJobOnMac(mac, job);
    assert.ok(!mac.isMember('once', 'admin') && gone(mac));
    mac.groups.get('admin')!.members.add('once'); // on purpose, by an administrator
    const shell = mac.spawn(mac.uidOf('once')!, { domain: 'gui' });
    mac.calls.length = 0;
    mac.now = at(65); // as if its own bootout had failed and launchd still ran it
    const r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s', `/usr/bin/stat -f %u:%HT ${restorePlistPath(GRANT)}`, ...leave]);
    assert.ok(mac.isMember('once', 'admin') && shell.alive());
  });

  it('touches nothing when the record is not the account it was armed for, and still removes itself', async () => {
    const cases: [string, (mac: FakeMac, name: string) => void][] = [
      ['another uid', (mac, n) => mac.user(n).attrs.set('UniqueID', ['2001000999'])],
      ['two uids', (mac, n) => mac.user(n).attrs.set('UniqueID', [mac.attr(n, 'UniqueID')!, '2001000999'])],
      ['no uid', (mac, n) => mac.user(n).attrs.delete('UniqueID')],
      ['deleted', (mac, n) => mac.users.delete(n)],
      ['someone else’s account of that name now, in admin', (mac, n) => { mac.users.delete(n); mac.addUser(n, 'Somebody'); }],
    ];
    for (const [what, change] of cases) {
      const { mac, job, procs } = await armed('moved', true);
      change(mac, 'moved');
      mac.now = at(60);
      const r = await runJobOnMac(mac, job);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('moved'), ...leave], what);
      assert.ok(procs.every((p) => p.alive()), what);
      assert.equal(mac.groups.get('admin')!.members.has('moved'), true, `${what}: the name stays in admin`);
      assert.ok(gone(mac), what);
    }
  });

  it('stays, changing nothing, while the directory cannot be read or the removal does not hold; acts at a later run', async () => {
    const { mac, job, procs } = await armed('retry', true);
    mac.now = at(1);
    mac.faults.readFails = true;
    let r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('retry')]);
    mac.faults.readFails = false;
    mac.faults.notRoot = true; // dseditgroup refused
    mac.calls.length = 0;
    r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('retry'), ...remove('retry')]);
    assert.ok(mac.isMember('retry', 'admin') && procs.every((p) => p.alive()) && !gone(mac));
    mac.faults.notRoot = false;
    mac.now = at(61);
    await runJobOnMac(mac, job);
    assert.ok(!mac.isMember('retry', 'admin') && procs.every((p) => !p.alive()) && gone(mac));
  });

  it('no longer listed in admin (taken out already): no dseditgroup, the logoff and the leaving still done', async () => {
    const { mac, job, uid } = await armed('already', true);
    mac.groups.get('admin')!.members.delete('already');
    mac.now = at(1);
    const r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('already'), '/usr/bin/dscl -plist . -read /Groups/admin GroupMembership', ...logoff(uid), ...leave]);
    assert.ok(gone(mac));
  });

  it('refuses malformed or hostile arguments with exit 2, running nothing', async () => {
    const { mac, job } = await armed('hostile', true);
    const marker = path.join(os.tmpdir(), `jit-restore-${randomBytes(6).toString('hex')}`);
    const sub = `$(touch ${marker})`;
    const good = job.slice(4) as [string, string, string, string, string, string];
    const bad: [number, string][] = [
      [0, ''], [0, 'a b'], [0, 'a/b'], [0, `a${sub}`], [0, 'g'.repeat(65)], [0, 'a;b'],
      [1, ''], [1, 'Hostile'], [1, '_www'], [1, '-rf'], [1, '.hidden'], [1, 'a'.repeat(33)], [1, 'a;b'], [1, `a${sub}`], [1, `a\`touch ${marker}\``], [1, 'a\nb'],
      [2, ''], [2, '0'], [2, '500'], [2, '0501'], [2, `${good[2]};x`], [2, '99999999999'], [2, '4294967296'],
      [3, ''], [3, 'staff'], [3, 'Admin'], [3, 'admin '], [3, 'wheel'],
      [4, ''], [4, '-1'], [4, '1e9'], [4, '0123'], [4, sub], [4, '1'.repeat(13)],
      [5, ''], [5, '2'], [5, 'yes'], [5, '01'], [5, '1 '],
    ];
    mac.now = at(60);
    for (const [i, value] of bad) {
      const args = [...good];
      args[i] = value;
      const r = await runJobOnMac(mac, [...job.slice(0, 4), ...args]);
      assert.equal(r.code, 2, `${i}: ${JSON.stringify(value)}`);
    }
    for (const args of [job.slice(0, 9), [...job, 'extra']]) {
      const r = await runJobOnMac(mac, args); // an argument missing, one too many
      assert.equal(r.code, 2, args.slice(4).join(' '));
    }
    assert.deepEqual(mac.calls, []);
    assert.equal(existsSync(marker), false);
    assert.ok(mac.isMember('hostile', 'admin') && !gone(mac));
  });

  it('keeps the script constant: the same text for every account, values only as arguments; sh -n and bash -n', async () => {
    const a = await armed('constant1', false, GRANT, 2_001_000_777);
    const b = await armed('constant2', true, 'another-grant', 4_000_000_123);
    const [x, y] = [a.job, b.job];
    assert.equal(x[2], RESTORE_SCRIPT);
    assert.equal(y[2], RESTORE_SCRIPT);
    for (const value of ['constant1', 'constant2', String(a.uid), String(b.uid), String(E), GRANT, 'another-grant']) assert.ok(!RESTORE_SCRIPT.includes(value), `${value} in the script`);
    assert.ok(!/\$\{?(?:[89]|\d\d)/.test(RESTORE_SCRIPT), 'only $1-$7 are read');
    for (const shell of [['dash', '-n'], ['bash', '--posix', '-n'], ['bash', '-n']]) {
      const r = spawnSync(shell[0]!, shell.slice(1), { input: RESTORE_SCRIPT, encoding: 'utf8' });
      assert.equal(r.status, 0, `${shell.join(' ')}: ${r.stderr}`);
    }
    // The job's whole command line, as a human would paste it, is one word per argument.
    const line = shellLine(y);
    assert.equal(bashSyntaxError(line), null);
    assert.deepEqual(bashWords([line]), [y]);
  });

  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    const calls = macs.flatMap((m) => m.calls);
    assert.ok(calls.some((c) => c.file === '/usr/bin/pkill'));
    assertShellSafe(calls);
  });
});
