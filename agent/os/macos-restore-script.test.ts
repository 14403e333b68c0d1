/**
 * The restore job's script, RUN FOR REAL with this machine's dash and bash (POSIX mode, as
 * macOS's /bin/sh is bash 3.2 in POSIX mode) against the recorded macOS: every tool it calls is a
 * stub at ROOT + its macOS path that asks the FakeMac model (test/support/fakeMacScript.ts), so
 * the model's clock, directory, groups, processes and launchd answer, and its effects are
 * checked there.
 *
 * What this proves: the script's logic (the clock, the uid check, the order of the actions, what
 * MEMBERSHIP and SUDO select, which sudoers drop-in it removes and which it leaves, that it acts
 * once and removes itself, that no value is ever interpreted, that no tool is found through PATH)
 * under two POSIX shells. What it does NOT prove: that launchd starts it when we
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
import { sudoDropIn, sudoDropInText } from './macos-sudo.ts';

const macs: FakeMac[] = [];
const END = new Date('2030-03-10T22:00:00.250Z');
const E = 1899410401; // END rounded up to the second
const at = (seconds: number) => E * 1000 + seconds * 1000;
const GRANT = '3f2b8c1e-9d4a-4e6b-8f00-0123456789ab';

/**
 * A person in admin (as the elevation left them) with a restore job armed for END, their
 * processes, a bystander's. `sudo`: the grant's drop-in written as the elevation writes it, and
 * the job told to remove it.
 */
async function armed(name: string, logoff: boolean, grantId = GRANT, uid?: number, { membership = true, sudo = false } = {}) {
  const { mac, backend } = recordedMac(macs);
  mac.addUser(name, 'A Person', uid);
  await backend.elevation.addMember(name, 'Administrators');
  if (sudo) await backend.elevation.grantSudo(name, grantId);
  await backend.elevation.restoreTimers.arm({ grantId, name, group: 'Administrators', at: END, logoff, membership, sudo });
  const id = mac.uidOf(name)!;
  const procs = [mac.spawn(id, { domain: 'gui' }), mac.spawn(id, { domain: 'user' }), mac.spawn(id), mac.spawn(id, { euidOnly: true })];
  const bystander = mac.spawn(id + 1);
  const job = mac.launchd.get(restoreLabel(grantId))!.programArguments;
  mac.calls.length = 0;
  return { mac, backend, uid: id, procs, bystander, job };
}

/** The plist still there, then (`sudo`: the drop-in's steps) the account's uid. */
const check = (name: string, sudo: string[] = [], grantId = GRANT) => [
  `/usr/bin/stat -f %u:%HT ${restorePlistPath(grantId)}`,
  ...sudo,
  `/usr/bin/dscl -plist . -read /Users/${name} UniqueID`,
];
/** The drop-in found, read, removed, read back. */
const unsudo = (grantId = GRANT) => {
  const f = sudoDropIn(grantId);
  return [`/usr/bin/stat -f %u:%HT ${f}`, `/bin/cat ${f}`, `/bin/rm -f ${f}`, `/usr/bin/stat -f %u:%HT ${f}`];
};
const remove = (name: string) => [
  '/usr/bin/dscl -plist . -read /Groups/admin GroupMembership',
  `/usr/sbin/dseditgroup -o edit -q -d ${name} -t user admin`,
  '/usr/bin/dscl -plist . -read /Groups/admin GroupMembership',
];
const logoff = (uid: number) => [`/bin/launchctl bootout gui/${uid}`, `/bin/launchctl bootout user/${uid}`, `/usr/bin/pkill -KILL -U ${uid}`, `/usr/bin/pkill -KILL -u ${uid}`];
const leaveOf = (grantId: string) => [`/bin/rm -f ${restorePlistPath(grantId)}`, `/bin/launchctl bootout system/${restoreLabel(grantId)}`];
const leave = leaveOf(GRANT);
/** Commands that change something. */
const MUTATING = /dseditgroup -o edit|launchctl bootout (gui|user)|pkill|dscl .* -(append|create|delete)/;
/** The job removed itself: no plist, not loaded. */
const gone = (mac: FakeMac, grantId = GRANT) => !mac.fs.has(restorePlistPath(grantId)) && !mac.launchd.has(restoreLabel(grantId));
/** What /etc/sudoers.d holds. */
const sudoersD = (mac: FakeMac) => mac.under('/etc/sudoers.d').filter((p) => p !== '/etc/sudoers.d').sort();
/** A file root wrote in /etc/sudoers.d, as install -m 0440 -o root -g wheel leaves it. */
const sudoersFile = (mac: FakeMac, file: string, content: string) => mac.fs.set(file, { uid: 0, gid: 0, mode: 0o440, type: 'Regular File', content });

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

  for (const shell of SHELLS) {
    it(`SUDO=1: our marked drop-in of this grant removed and read back, others left; then the membership, the logoff, gone (${shell})`, async () => {
      const { mac, job, uid, procs } = await armed('sudoer', true, GRANT, undefined, { sudo: true });
      const other = sudoDropIn('other-grant');
      sudoersFile(mac, other, sudoDropInText('sudoer', 'other-grant'));
      sudoersFile(mac, '/etc/sudoers.d/local', 'sudoer ALL=(ALL) ALL\n');
      assert.deepEqual(job.slice(9), ['1', '1', '1']);
      mac.now = at(60);
      const r = await runJobOnMac(mac, job, shell);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('sudoer', unsudo()), ...remove('sudoer'), ...logoff(uid), ...leave]);
      assert.deepEqual(sudoersD(mac), ['/etc/sudoers.d/local', other].sort(), 'only ours of this grant went');
      assert.equal(mac.fs.get(other)!.content, sudoDropInText('sudoer', 'other-grant'));
      assert.ok(!mac.isMember('sudoer', 'admin') && procs.every((p) => !p.alive()) && gone(mac));
      mac.assertAllModelled();
    });

    it(`SUDO=1 leaves whatever at the drop-in's path is not ours of this grant: another marker, none, not first, a folder, a link (${shell})`, async () => {
      const g = 'g.1'; // its drop-in is jit-access-g_1, as is g_1's
      const cases: [string, (mac: FakeMac, file: string) => void, boolean][] = [
        ['the grant g_1’s, same path', (mac, f) => sudoersFile(mac, f, sudoDropInText('keeper', 'g_1')), true],
        ['g.10’s marker (no space after g.1)', (mac, f) => sudoersFile(mac, f, sudoDropInText('keeper', 'g.10')), true],
        ['no marker', (mac, f) => sudoersFile(mac, f, 'keeper ALL=(ALL:ALL) NOPASSWD: ALL\n'), true],
        ['the marker on the second line', (mac, f) => sudoersFile(mac, f, `# local\n${sudoDropInText('keeper', g)}`), true],
        ['the marker indented', (mac, f) => sudoersFile(mac, f, ` ${sudoDropInText('keeper', g)}`), true],
        ['empty', (mac, f) => sudoersFile(mac, f, ''), true],
        ['a folder', (mac, f) => mac.fs.set(f, { uid: 0, type: 'Directory' }), false],
        ['a link', (mac, f) => mac.fs.set(f, { uid: 0, type: 'Symbolic Link' }), false],
      ];
      for (const [what, put, read] of cases) {
        const { mac, job } = await armed('keeper', false, g, undefined, { sudo: true });
        const f = sudoDropIn(g);
        assert.equal(f, '/etc/sudoers.d/jit-access-g_1');
        put(mac, f);
        const before = { ...mac.fs.get(f)! };
        mac.now = at(60);
        const r = await runJobOnMac(mac, job, shell);
        assert.equal(r.code, 0, `${what}: ${r.stderr}`);
        const seen = [`/usr/bin/stat -f %u:%HT ${f}`, ...(read ? [`/bin/cat ${f}`] : [])];
        assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('keeper', seen, g), ...remove('keeper'), ...leaveOf(g)], what);
        assert.deepEqual(mac.fs.get(f), before, `${what}: left as it was`);
        assert.ok(!mac.isMember('keeper', 'admin') && gone(mac, g), `${what}: the rest done, and gone`);
        mac.assertAllModelled();
      }
    });

    it(`MEMBERSHIP=0 (in admin before the grant): the membership stays, no dseditgroup; the drop-in still goes, the logoff done (${shell})`, async () => {
      const { mac, job, uid, procs, bystander } = await armed('wasadmin', true, GRANT, undefined, { membership: false, sudo: true });
      assert.deepEqual(job.slice(9), ['1', '0', '1']);
      mac.now = at(60);
      const r = await runJobOnMac(mac, job, shell);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('wasadmin', unsudo()), ...logoff(uid), ...leave]);
      assert.ok(!lines(mac.calls).some((l) => l.includes('dseditgroup') || l.includes('/Groups/')));
      assert.ok(mac.isMember('wasadmin', 'admin'), 'still in admin');
      assert.deepEqual(sudoersD(mac), []);
      assert.ok(procs.every((p) => !p.alive()) && bystander.alive() && gone(mac));
    });

    it(`the drop-in's name is sudoDropIn's for any grant id: each '.' as '_' (${shell})`, async () => {
      for (const g of ['.a.b..c.', 'v1.2.3', '...', 'no_dots-here']) {
        const { mac, job } = await armed('dotty', false, g, undefined, { membership: false, sudo: true });
        assert.deepEqual(sudoersD(mac), [sudoDropIn(g)], g);
        mac.now = at(60);
        const r = await runJobOnMac(mac, job, shell);
        assert.equal(r.code, 0, `${g}: ${r.stderr}`);
        assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('dotty', unsudo(g), g), ...leaveOf(g)], g);
        assert.deepEqual(sudoersD(mac), [], g);
        assert.ok(mac.isMember('dotty', 'admin') && gone(mac, g), g);
      }
    });
  }

  it('SUDO=1 and the record is not the account it was armed for: our drop-in still goes (it gives root to the name), nothing of the account touched', async () => {
    const cases: [string, (mac: FakeMac, name: string) => void][] = [
      ['another uid', (mac, n) => mac.user(n).attrs.set('UniqueID', ['2001000999'])],
      ['deleted', (mac, n) => mac.users.delete(n)],
      ['someone else’s account of that name now, in admin', (mac, n) => { mac.users.delete(n); mac.addUser(n, 'Somebody'); }],
    ];
    for (const [what, change] of cases) {
      const { mac, job, procs } = await armed('moved', true, GRANT, undefined, { sudo: true });
      change(mac, 'moved');
      mac.now = at(60);
      const r = await runJobOnMac(mac, job);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('moved', unsudo()), ...leave], what);
      assert.deepEqual(sudoersD(mac), [], what);
      assert.ok(procs.every((p) => p.alive()), what);
      assert.equal(mac.groups.get('admin')!.members.has('moved'), true, `${what}: the name stays in admin`);
      assert.ok(gone(mac), what);
    }
  });

  it('SUDO=0: a drop-in of this grant is not looked at', async () => {
    const { mac, backend, job } = await armed('nosudo', false);
    await backend.elevation.grantSudo('nosudo', GRANT);
    mac.calls.length = 0;
    mac.now = at(60);
    const r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('nosudo'), ...remove('nosudo'), ...leave]);
    assert.deepEqual(sudoersD(mac), [sudoDropIn(GRANT)]);
  });

  it('stays while our drop-in does not go (the membership still taken away, no logoff yet), and leaves at a later run', async () => {
    const { mac, job, uid, procs } = await armed('stuck', true, GRANT, undefined, { sudo: true });
    const f = sudoDropIn(GRANT);
    mac.faults.rmFails.add(f);
    mac.now = at(1);
    let r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('stuck', unsudo()), ...remove('stuck')]);
    assert.ok(mac.fs.has(f) && !mac.isMember('stuck', 'admin') && procs.every((p) => p.alive()) && !gone(mac));
    // The account gone meanwhile, the drop-in still stuck: still no leaving.
    const record = mac.users.get('stuck')!;
    mac.users.delete('stuck');
    mac.calls.length = 0;
    mac.now = at(61);
    r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('stuck', unsudo())]);
    assert.ok(mac.fs.has(f) && !gone(mac));
    mac.users.set('stuck', record);
    mac.faults.rmFails.clear();
    mac.calls.length = 0;
    mac.now = at(121);
    r = await runJobOnMac(mac, job);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(mac.calls), ['/bin/date +%s', ...check('stuck', unsudo()), '/usr/bin/dscl -plist . -read /Groups/admin GroupMembership', ...logoff(uid), ...leave]);
    assert.ok(!mac.fs.has(f) && procs.every((p) => !p.alive()) && gone(mac));
  });

  it('refuses malformed or hostile arguments with exit 2, running nothing', async () => {
    const { mac, job } = await armed('hostile', true, GRANT, undefined, { sudo: true });
    const marker = path.join(os.tmpdir(), `jit-restore-${randomBytes(6).toString('hex')}`);
    const sub = `$(touch ${marker})`;
    const good = job.slice(4);
    assert.deepEqual(good.slice(5), ['1', '1', '1'], 'LOGOFF MEMBERSHIP SUDO');
    mac.calls.length = 0;
    const bad: [number, string][] = [
      [0, ''], [0, 'a b'], [0, 'a/b'], [0, `a${sub}`], [0, 'g'.repeat(65)], [0, 'a;b'],
      [1, ''], [1, 'Hostile'], [1, '_www'], [1, '-rf'], [1, '.hidden'], [1, 'a'.repeat(33)], [1, 'a;b'], [1, `a${sub}`], [1, `a\`touch ${marker}\``], [1, 'a\nb'],
      [2, ''], [2, '0'], [2, '500'], [2, '0501'], [2, `${good[2]};x`], [2, '99999999999'], [2, '4294967296'],
      [3, ''], [3, 'staff'], [3, 'Admin'], [3, 'admin '], [3, 'wheel'],
      [4, ''], [4, '-1'], [4, '1e9'], [4, '0123'], [4, sub], [4, '1'.repeat(13)],
      [5, ''], [5, '2'], [5, 'yes'], [5, '01'], [5, '1 '],
      [6, ''], [6, '2'], [6, 'yes'], [6, '01'], [6, '1 '], [6, ' 1'], [6, '-1'], [6, 'true'], [6, sub],
      [7, ''], [7, '2'], [7, 'yes'], [7, '01'], [7, '1 '], [7, ' 1'], [7, '-1'], [7, 'true'], [7, sub],
    ];
    mac.now = at(60);
    for (const [i, value] of bad) {
      const args = [...good];
      args[i] = value;
      const r = await runJobOnMac(mac, [...job.slice(0, 4), ...args]);
      assert.equal(r.code, 2, `${i}: ${JSON.stringify(value)}`);
    }
    // MEMBERSHIP=0 and SUDO=0: nothing to take away, refused as well.
    const none = await runJobOnMac(mac, [...job.slice(0, 4), ...good.slice(0, 6), '0', '0']);
    assert.equal(none.code, 2, 'MEMBERSHIP 0 SUDO 0');
    for (const args of [job.slice(0, 11), job.slice(0, 10), [...job, 'extra'], [...job, '/', 'extra']]) {
      const r = await runJobOnMac(mac, args); // an argument missing, one too many
      assert.equal(r.code, 2, args.slice(4).join(' '));
    }
    assert.deepEqual(mac.calls, []);
    assert.equal(existsSync(marker), false);
    assert.ok(mac.isMember('hostile', 'admin') && !gone(mac));
    assert.deepEqual(sudoersD(mac), [sudoDropIn(GRANT)], 'the drop-in untouched');
  });

  it('keeps the script constant: the same text for every account, values only as arguments; sh -n and bash -n', async () => {
    const a = await armed('constant1', false, GRANT, 2_001_000_777);
    const b = await armed('constant2', true, 'another.grant', 4_000_000_123, { membership: false, sudo: true });
    const [x, y] = [a.job, b.job];
    assert.equal(x[2], RESTORE_SCRIPT);
    assert.equal(y[2], RESTORE_SCRIPT);
    assert.deepEqual(x.slice(9), ['0', '1', '0']);
    assert.deepEqual(y.slice(9), ['1', '0', '1']);
    for (const value of ['constant1', 'constant2', String(a.uid), String(b.uid), String(E), GRANT, 'another.grant', 'another_grant']) assert.ok(!RESTORE_SCRIPT.includes(value), `${value} in the script`);
    assert.ok(!/\$\{?(?:0|\d\d)/.test(RESTORE_SCRIPT), 'only $1-$9 are read');
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
