/**
 * MacBackend against a RECORDED macOS (test/support/fakeMac.ts): creation, passwords, groups,
 * enable/disable and the ownership marker; removal is in macos-removal.test.ts and the
 * hard-expiry backstop in macos-expiry.test.ts.
 *
 * What this proves: our argv, our stdin payloads, the order of steps, our parsing of the
 * answers, our checks and error mapping, and that the password never reaches an argv.
 * What it does NOT prove: that macOS answers like the model (⚠️ in fakeMac.ts).
 *
 * To check on a real Mac (as root), in the order the backend relies on them:
 *  1. the tools live at the MAC_BIN paths;
 *  2. `dscl . -create /Users/N RealName T` creates the missing record and sets RealName in one
 *     command (DSTools' createAndCd), a record without UniqueID can log in nowhere, and
 *     `dscl . -append /Groups/G GroupMembership N` accepts a name that has no record yet;
 *  3. AuthenticationAuthority `;DisabledUser;` + `;DisabledTags;SecureToken` set before any
 *     password: `passwd` through `dscl -q .` then works as root, adds the ShadowHash value and keeps
 *     both (else the backend re-adds them), and no Secure Token is granted even on a Mac where
 *     nobody holds one (`sysadminctl -secureTokenStatus N` says DISABLED);
 *  4. `createhomedir -c -u N` makes /Users/N owned by the account; `stat -f %u:%HT P` prints
 *     "UID:Directory" (lstat) and fails with "No such file or directory";
 *  5. `dscl -plist . -read /Users/N UniqueID … jitAccessGroup` prints a plist dict of
 *     dsAttrTypeStandard:/dsAttrTypeNative:KEY → array of strings, "No such key: K" for absent
 *     keys (no plist if none is there); a missing record: non-zero exit + eDSRecordNotFound;
 *     a custom native attribute (jitAccessGroup) is accepted by the local node;
 *  6. `dscl . -list /Users UniqueID` and `dscl . -list /Groups GroupMembership` print one line per
 *     record: the name, then the values, whitespace-separated;
 *  7. `pwpolicy -u N -n /Local/Default -disableuser` adds ;DisabledUser; (else the dscl -append
 *     fallback works), blocks loginwindow, ssh and su; -enableuser removes it (else dscl -delete);
 *  8. `dscl -q .` reads non-TTY stdin, `passwd /Users/N PW` as root needs no old password, the exit
 *     status stays 0 on failure (errors only as text), words split on spaces;
 *     `dscl . -readpl /Users/N accountPolicyData passwordLastSetTime` grows with each passwd;
 *  9. `pwpolicy … -setaccountpolicies FILE` accepts our plist (a parameter of our own naming in
 *     policyParameters), -getaccountpolicies prints one line then the plist, and authentication
 *     (loginwindow, ssh, su, `pwpolicy -authentication-allowed`) is refused from the instant on;
 *     whether an already open session is affected (it is not expected to be: logoff does that);
 * 10. `dseditgroup -o create -q jit-managed` and `-o edit -q -a|-d N -t user G` act on the local
 *     node without prompting; `-o checkmember -m N G` answers "yes …"/exit 0 or "no …"/non-zero,
 *     also for a record without UniqueID; staff is "yes" through PrimaryGroupID 20;
 * 11. `launchctl bootout gui/UID` / `user/UID` end the sessions and fail harmlessly when absent;
 *     BSD `pgrep`/`pkill -KILL -U|-u UID` exit 0/1;
 * 12. `sysadminctl -deleteUser N` from the launchd daemon (no GUI session): when it fails (-14120,
 *     exit status?), `dscl . -delete /Users/N` removes the record; `dscl . -delete /Groups/G
 *     GroupMembership N` removes a stale name; `dscl . -delete /Groups/jit-managed` drops the group;
 * 13. BSD `find -x DIR… -user UID -delete` with a numeric uid of a deleted account, `rm -rf`,
 *     `chflags -R nouchg`, and that /private/var/db/sudo/ts/NAME and /private/var/at/tabs/NAME
 *     are sudo's timestamp and the crontab on current macOS;
 * 14. the backstop timer (launchd, install -S, the script under bash 3.2): list in macos-backstop.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertShellSafe, DISABLED, FakeMac, lines, macPassword, NO_TOKEN, plist, recordedMac, spec, TOKEN } from '../../test/support/fakeMac.ts';
import { bashSyntaxError, bashWords, shellLine, shellQuote } from '../../test/support/shellQuote.ts';
import { removeAccount } from '../removal.ts';
import { TEMP_UID_RANGE } from './backend.ts';
import { accountBackendContract, inAnHour, rejectsWith } from './contract.ts';
import { MAC_BIN, MacBackend, MARKER_GROUP } from './macos.ts';
import { parseDsclPlist, parsePlist } from './macos-plist.ts';

// ------------------------------------------------------------------ helpers

/** Every model this file made, for the final bash check. */
const macs: FakeMac[] = [];
const recorded = () => recordedMac(macs);

// ------------------------------------------------------------------ tests

accountBackendContract('macos (recorded)', async () => {
  const { mac, backend } = recorded();
  return {
    backend,
    newPassword: macPassword,
    spawnAs: async (id: string) => mac.spawn(Number(id)),
    createUnmanaged: async (name: string) => void mac.addUser(name, 'Somebody Else'),
    cleanup: async () => mac.assertAllModelled(),
  };
});

describe('MacBackend (recorded macOS): creating', function () {
  it('creates with dscl: marker first, born tagged and disabled, no password before DisabledUser', async () => {
    const { mac, backend } = recorded();
    const uid = TEMP_UID_RANGE.min + 7;
    const info = await backend.createDisabled({ ...spec('jtgolden', 'Administrators', 'g-1'), uid }, macPassword());
    assert.deepEqual(info, { name: 'jtgolden', id: String(uid), enabled: false, managed: true, groups: ['Administrators'] });
    const read = '/usr/bin/dscl -plist . -read /Users/jtgolden UniqueID PrimaryGroupID UserShell NFSHomeDirectory RealName AuthenticationAuthority jitAccessGroup';
    const member = (g: string) => `/usr/sbin/dseditgroup -o checkmember -m jtgolden ${g}`;
    const marker = '/usr/bin/dscl -plist . -read /Groups/jit-managed GroupMembership';
    const create = (k: string, ...v: string[]) => shellLine([MAC_BIN.dscl, '.', '-create', '/Users/jtgolden', k, ...v]);
    assert.deepEqual(lines(mac.calls).map((l) => l.replace(/\/jit-pwpolicy-\w+\//, '/jit-pwpolicy-X/')), [
      read, // absent
      '/usr/bin/dscl . -list /Users UniqueID', // the uid is free
      marker, // absent: create it
      '/usr/sbin/dseditgroup -o create -q jit-managed',
      marker,
      '/usr/bin/dscl . -append /Groups/jit-managed GroupMembership jtgolden', // marker first: no record yet
      create('RealName', 'jit-access grant=g-1'), // the record is born with its tag
      read, // ours: no UniqueID, no AuthenticationAuthority
      create('AuthenticationAuthority', ';DisabledUser;', ';DisabledTags;SecureToken'),
      create('jitAccessGroup', 'Administrators'),
      create('UniqueID', String(uid)),
      create('PrimaryGroupID', '20'),
      create('UserShell', '/bin/zsh'),
      create('NFSHomeDirectory', '/Users/jtgolden'),
      read,
      '/usr/bin/dscl . -readpl /Users/jtgolden accountPolicyData passwordLastSetTime',
      '/usr/bin/dscl -q . <<< STDIN',
      '/usr/bin/dscl . -readpl /Users/jtgolden accountPolicyData passwordLastSetTime',
      read, // still disabled, no Secure Token
      '/usr/sbin/createhomedir -c -u jtgolden',
      `/usr/bin/stat -f %u:%HT /Users/jtgolden`,
      member('admin'),
      '/usr/sbin/dseditgroup -o edit -q -a jtgolden -t user admin',
      member('admin'),
      '/usr/bin/pwpolicy -u jtgolden -n /Local/Default -setaccountpolicies /tmp/jit-pwpolicy-X/policy.plist',
      '/usr/bin/pwpolicy -u jtgolden -n /Local/Default -getaccountpolicies',
      read,
      member('admin'),
      marker,
    ]);
    const u = mac.user('jtgolden');
    assert.deepEqual(Object.fromEntries(u.attrs), {
      RealName: ['jit-access grant=g-1'], AuthenticationAuthority: [DISABLED, NO_TOKEN, u.attrs.get('AuthenticationAuthority')![2]!],
      jitAccessGroup: ['Administrators'], UniqueID: [String(uid)], PrimaryGroupID: ['20'], UserShell: ['/bin/zsh'], NFSHomeDirectory: ['/Users/jtgolden'],
    });
    assert.match(mac.auth('jtgolden')[2]!, /^;ShadowHash;/);
    assert.deepEqual(mac.fs.get('/Users/jtgolden'), { uid, type: 'Directory' });
    mac.assertAllModelled();
  });

  // Item 3 of the hardening issue: sysadminctl -addUser without -password left an enabled
  // account with an empty password until the next command.
  it('leaves nothing usable and nothing unmanaged when the agent dies after any command', async () => {
    const probe = recorded();
    await probe.backend.createDisabled(spec('jtcrash'), macPassword());
    const total = probe.mac.calls.length;
    for (let n = 0; n <= total; n++) {
      const { mac, backend } = recorded();
      mac.crashAfter = n;
      const outcome = await backend.createDisabled(spec('jtcrash'), macPassword()).then(() => 'created', (e: unknown) => e);
      if (n < total) assert.ok(outcome instanceof Error && /the agent died here/.test(outcome.message), `after ${n}: ${String(outcome)}`);
      else assert.equal(outcome, 'created');
      mac.crashAfter = undefined;
      const last = lines(mac.calls).at(-1);
      const fresh = new MacBackend({ run: mac.run }); // the restarted agent
      if (!mac.users.has('jtcrash')) {
        assert.equal(await fresh.lookup('jtcrash'), null);
        continue;
      }
      assert.equal(mac.usable('jtcrash'), false, `usable after ${n} commands (last: ${last})`);
      assert.ok(!mac.auth('jtcrash').includes(TOKEN), `a Secure Token after ${n} commands`);
      const info = await fresh.lookup('jtcrash');
      assert.deepEqual([info?.managed, info?.enabled], [true, false], `after ${n} commands (last: ${last})`);
      assert.deepEqual((await fresh.listManaged()).map((i) => i.name), ['jtcrash'], `not found by the sweep after ${n} commands`);
      // What the orphan sweep then does.
      await removeAccount(fresh, { name: 'jtcrash', id: info!.id }, 'disable');
      assert.equal(mac.users.has('jtcrash'), false);
      assert.equal(mac.groups.get(MARKER_GROUP)!.members.has('jtcrash'), false);
      assert.equal(mac.fs.has('/Users/jtcrash'), false);
      mac.assertAllModelled();
    }
    assert.ok(total > 20, `only ${total} commands`);
  });

  it('gives no Secure Token even where nobody holds one yet, and restores the tag if passwd drops it', async () => {
    const { mac, backend } = recorded();
    assert.ok(![...mac.users.keys()].some((n) => mac.auth(n).includes(TOKEN)));
    await backend.createDisabled(spec('jtnotok'), macPassword());
    assert.ok(mac.auth('jtnotok').includes(NO_TOKEN) && !mac.auth('jtnotok').includes(TOKEN));
    mac.faults.passwdDropsNoTokenTag = true;
    await backend.setPassword('jtnotok', macPassword());
    assert.ok(mac.auth('jtnotok').includes(NO_TOKEN), 'tag restored');
    await backend.enable('jtnotok', inAnHour());
    assert.ok(mac.auth('jtnotok').includes(NO_TOKEN) && !mac.auth('jtnotok').includes(TOKEN));
  });

  it('takes the uid it is handed (or one from uidRange), refuses a taken or out-of-range one', async () => {
    const { mac, backend } = recorded();
    assert.deepEqual(backend.uidRange, TEMP_UID_RANGE);
    const { id } = await backend.createDisabled(spec('jtpick'), macPassword());
    assert.ok(Number(id) >= TEMP_UID_RANGE.min && Number(id) <= TEMP_UID_RANGE.max, id);
    mac.addUser('jtother', 'Somebody', TEMP_UID_RANGE.min + 5);
    await rejectsWith(backend.createDisabled({ ...spec('jttaken'), uid: TEMP_UID_RANGE.min + 5 }, macPassword()), 'ID_TAKEN');
    await rejectsWith(backend.createDisabled({ ...spec('jtlow'), uid: 501 }, macPassword()), 'COMMAND_FAILED');
    assert.ok(!mac.users.has('jttaken') && !mac.users.has('jtlow'));
    assert.ok(!mac.groups.get(MARKER_GROUP)!.members.has('jttaken'));
  });

  it('never takes over an account that appears under the same name while creating', async () => {
    const { mac, backend } = recorded();
    mac.beforeRecordCreate = (name) => {
      mac.beforeRecordCreate = undefined;
      mac.addUser(name, 'Someone Else');
    };
    await rejectsWith(backend.createDisabled(spec('jtrace'), macPassword()), 'ALREADY_EXISTS');
    const theirs = mac.user('jtrace');
    // dscl -create is an upsert: their RealName was overwritten, but nothing that matters.
    assert.deepEqual([theirs.attrs.get('UniqueID'), theirs.attrs.get('AuthenticationAuthority')?.length, theirs.password], [['501'], 1, '']);
    assert.equal((await backend.lookup('jtrace'))?.managed, false, 'not left looking like ours');
    assert.equal(mac.disabled('jtrace'), false);
    assert.equal(mac.isMember('jtrace', 'admin'), false);
    assert.ok(!mac.calls.some((c) => c.argv[0] === '-deleteUser' || (c.argv[1] === '-delete' && c.argv[2] === '/Users/jtrace')));
  });

  it('deletes the half-made account when a later step fails', async () => {
    const { mac, backend } = recorded();
    mac.faults.passwdSilentlyIgnored = true; // dscl says nothing and exits 0, but nothing changed
    await rejectsWith(backend.createDisabled(spec('jthalf'), macPassword()), 'COMMAND_FAILED');
    assert.equal(mac.users.has('jthalf'), false);
    assert.equal(mac.fs.has('/Users/jthalf'), false);
    assert.equal(mac.groups.get(MARKER_GROUP)!.members.has('jthalf'), false);
  });

  it('checks what it cannot trust: refusals are caught, nothing is left', async () => {
    const { mac, backend } = recorded();
    mac.faults.notRoot = true;
    await rejectsWith(backend.createDisabled(spec('jtnoroot'), macPassword()), 'ACCESS_DENIED');
    mac.faults.notRoot = false;
    mac.faults.readFails = true;
    await rejectsWith(backend.createDisabled(spec('jtread'), macPassword()), 'COMMAND_FAILED');
    assert.ok(!mac.users.has('jtnoroot') && !mac.users.has('jtread'));
  });

  it('rejects hostile names and grant ids without running anything', async () => {
    const { mac, backend } = recorded();
    const hostile = ['g$(touch x)', 'g`id`', "g'x", 'g"x', 'g\u2018x\u2019', 'g\u201cx\u201d', 'g\nx', 'g x', 'g;x', '', 'g'.repeat(65)];
    for (const grantId of hostile) await rejectsWith(backend.createDisabled(spec('jtgrant', 'Users', grantId), macPassword()), 'COMMAND_FAILED');
    for (const name of hostile) await rejectsWith(backend.createDisabled(spec(name), macPassword()), 'INVALID_NAME');
    assert.deepEqual(mac.calls, []);
  });
});

describe('MacBackend (recorded macOS): enable, disable, groups, marker', function () {
  // Item 1: a disabled account keeps no privilege it could use.
  it('disable: pwpolicy -disableuser and out of admin, both read back; enable gives the granted group back', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtdis', 'Administrators'), macPassword());
    const u = mac.user('jtdis');
    u.attrs.set('AuthenticationAuthority', mac.auth('jtdis').filter((v) => v !== DISABLED)); // as if enabled
    mac.calls.length = 0;
    await backend.disable('jtdis');
    assert.equal(mac.disabled('jtdis'), true);
    assert.equal(mac.isMember('jtdis', 'admin'), false, 'no admin rights left on a disabled account');
    const ran = lines(mac.calls);
    assert.ok(ran.includes('/usr/bin/pwpolicy -u jtdis -n /Local/Default -disableuser'), ran.join('\n'));
    assert.ok(ran.includes('/usr/sbin/dseditgroup -o edit -q -d jtdis -t user admin'), ran.join('\n'));
    assert.deepEqual(await backend.lookup('jtdis'), { name: 'jtdis', id: String(mac.uidOf('jtdis')), enabled: false, managed: true, groups: ['Users'] });
    await backend.disable('jtdis'); // again: harmless
    await backend.enable('jtdis', inAnHour());
    assert.deepEqual((await backend.lookup('jtdis'))?.groups, ['Administrators']);
    assert.equal((await backend.lookup('jtdis'))?.enabled, true);

    await backend.createDisabled(spec('jtusers', 'Users'), macPassword());
    await backend.enable('jtusers', inAnHour());
    await backend.disable('jtusers');
    await backend.enable('jtusers', inAnHour());
    assert.equal(mac.isMember('jtusers', 'admin'), false, 'enable never grants more than the grant asked');
  });

  it('disable: falls back to dscl when pwpolicy -disableuser changes nothing; missing is fine; unmarked is refused', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtdis2'), macPassword());
    await backend.enable('jtdis2', inAnHour());
    mac.faults.disableuserIgnored = true;
    await backend.disable('jtdis2');
    assert.equal(mac.disabled('jtdis2'), true);
    assert.ok(lines(mac.calls).includes("/usr/bin/dscl . -append /Users/jtdis2 AuthenticationAuthority ';DisabledUser;'"));
    await backend.disable('jtnobody');
    mac.addUser('jtforeign', 'Somebody');
    await rejectsWith(backend.disable('jtforeign'), 'NOT_MANAGED');
    assert.equal(mac.disabled('jtforeign'), false);
  });

  it('enables through dscl when pwpolicy -enableuser leaves ;DisabledUser; in place', async () => {
    const { mac, backend } = recorded();
    mac.faults.enableuserKeepsTag = true;
    await backend.createDisabled(spec('jtenable'), macPassword());
    await backend.enable('jtenable', inAnHour());
    assert.equal(mac.disabled('jtenable'), false);
    assert.ok(mac.calls.some((c) => shellLine(c.argv) === ". -delete /Users/jtenable AuthenticationAuthority ';DisabledUser;'"));
  });

  it('maps groups: admin → Administrators (though staff is everyone’s), Users leaves admin', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtgrp', 'Users'), macPassword());
    assert.deepEqual((await backend.lookup('jtgrp'))?.groups, ['Users']);
    assert.equal(mac.groups.get('admin')!.members.has('jtgrp'), false);
    await backend.setGroups('jtgrp', 'Administrators');
    assert.deepEqual((await backend.lookup('jtgrp'))?.groups, ['Administrators']);
    assert.equal(mac.attr('jtgrp', 'jitAccessGroup'), 'Administrators');
    await backend.setGroups('jtgrp', 'Users');
    assert.equal(mac.isMember('jtgrp', 'admin'), false);
    assert.equal(mac.isMember('jtgrp', 'staff'), true);
    await rejectsWith(backend.setGroups('jtgrp', 'Power Users'), 'UNSUPPORTED_GROUP');
  });

  it('needs both markers: the jit-managed group and the RealName tag', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtours'), macPassword());
    mac.addUser('jtgrouponly', 'Somebody');
    mac.groups.get(MARKER_GROUP)!.members.add('jtgrouponly');
    mac.addUser('jttagonly', 'jit-access grant=g1');
    mac.groups.get(MARKER_GROUP)!.members.add('Not A Name'); // an admin's stray entry: never looked up
    for (const name of ['jtgrouponly', 'jttagonly']) {
      assert.equal((await backend.lookup(name))?.managed, false);
      await rejectsWith(backend.delete(name), 'NOT_MANAGED');
      await rejectsWith(backend.enable(name, inAnHour()), 'NOT_MANAGED');
    }
    mac.calls.length = 0;
    assert.deepEqual((await backend.listManaged()).map((i) => i.name), ['jtours']);
    assert.ok(mac.calls.every((c) => !c.argv.some((a) => a.includes('Not A Name'))));
  });

  it('treats a failed dscl read as an error, never as "absent"', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtread'), macPassword());
    mac.faults.readFails = true;
    await rejectsWith(backend.lookup('jtread'), 'COMMAND_FAILED');
    await rejectsWith(backend.delete('jtread'), 'COMMAND_FAILED');
    await rejectsWith(backend.disable('jtread'), 'COMMAND_FAILED');
    await rejectsWith(backend.listManaged(), 'COMMAND_FAILED');
    mac.faults.readFails = false;
    assert.equal((await backend.lookup('jtread'))?.managed, true);
  });

  it('parses dscl plists and pwpolicy plists strictly', () => {
    const attrs = parseDsclPlist(plist([['RealName', ['a &amp; b <c>']], ['GroupMembership', ['x', 'y']]]).replace('&amp;amp;', '&#38;'));
    assert.deepEqual(Object.fromEntries(attrs), { RealName: ['a & b <c>'], GroupMembership: ['x', 'y'] });
    assert.deepEqual(Object.fromEntries(parseDsclPlist('<plist version="1.0">\n<dict>\n<key>dsAttrTypeNative:IsHidden</key>\n<string>1</string>\n<key>E</key><array/>\n</dict>\n</plist>')), { IsHidden: ['1'], E: [] });
    assert.throws(() => parseDsclPlist('<plist version="1.0"><dict><key>K</key><data>AAAA</data></dict></plist>'), /unexpected content/);
    assert.throws(() => parseDsclPlist('No such key: RealName'), /no plist/);
    assert.deepEqual(parsePlist('<plist><dict><key>a</key><string> x </string><key>b</key><array><true/><integer>-3</integer><real>1.5</real></array></dict></plist>'), Object.assign(Object.create(null), { a: ' x ', b: [true, -3, 1.5] }));
    for (const bad of ['<plist><dict><!-- c --></dict></plist>', '<plist><dict><key>a</key></dict></plist>', '<plist><string>a</string><string>b</string></plist>', '<plist><integer>1x</integer></plist>', '<plist><dict><key>a</key><true/><key>a</key><true/></dict></plist>']) {
      assert.throws(() => parsePlist(bad), /plist content/, bad);
    }
  });

  it('renders hostile values as single shell words that bash never interprets', () => {
    const marker = path.join(os.tmpdir(), `jit-mac-${randomBytes(6).toString('hex')}`);
    const hostile = [
      `$(touch ${marker})`, `\`touch ${marker}\``, `;touch ${marker}`, `'; touch ${marker}; '`, `"$(touch ${marker})"`,
      '\u2018x\u2019 \u201cy\u201d', 'a\nb', 'a\rb', 'tab\there', '*', '~', '{a,b}', 'x=y', '!!', '$HOME', "it's", '\\', '',
    ];
    const argv = [MAC_BIN.dscl, ...hostile];
    const line = shellLine(argv);
    assert.equal(bashSyntaxError(line), null);
    assert.deepEqual(bashWords([line]), [argv]);
    assert.equal(existsSync(marker), false);
    assert.throws(() => shellQuote('a\0b'), /NUL/);
  });

  // Last: sees every command this file's models ran, the contract suite's included.
  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    const calls = macs.flatMap((m) => m.calls);
    assert.ok(calls.length > 500, `only ${calls.length} commands recorded`);
    assertShellSafe(calls);
  });
});
