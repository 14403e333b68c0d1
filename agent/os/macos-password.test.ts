/**
 * MacBackend's passwords against the RECORDED macOS (test/support/fakeMac.ts): only ever on
 * dscl's stdin, in an alphabet dscl's own word splitter cannot misread, never in an error.
 * The checklist of what to verify on a real Mac is in macos.test.ts.
 */
import assert from 'node:assert/strict';
import { assertShellSafe, dsclTokens, type FakeMac, macPassword, recordedMac, spec } from '../../test/support/fakeMac.ts';
import { newPassword as agentPassword } from '../credentials.ts';
import { inAnHour, newPassword as contractPassword, rejectsWith } from './contract.ts';
import { dsclPasswdScript, MAC_BIN, MAC_PASSWORD } from './macos.ts';

const macs: FakeMac[] = [];
const recorded = () => recordedMac(macs);

describe('MacBackend (recorded macOS): passwords', function () {
  it('puts the password only on stdin, as one passwd line that dscl splits into three words', async () => {
    const { mac, backend } = recorded();
    const [first, second] = [macPassword(), macPassword()];
    await backend.createDisabled(spec('jtstdin', 'Users'), first);
    await backend.setPassword('jtstdin', second);
    assert.equal(mac.user('jtstdin').password, second);
    for (const pw of [first, second]) assert.ok(mac.calls.every((c) => !c.argv.some((a) => a.includes(pw))), 'password in an argv');
    const withStdin = mac.calls.filter((c) => c.stdin !== undefined);
    assert.deepEqual(withStdin.map((c) => [c.file, ...c.argv]), [[MAC_BIN.dscl, '-q', '.'], [MAC_BIN.dscl, '-q', '.']]);
    assert.deepEqual(withStdin.map((c) => c.stdin), [`passwd /Users/jtstdin ${first}\nquit\n`, `passwd /Users/jtstdin ${second}\nquit\n`]);
    for (const [i, pw] of [first, second].entries()) {
      const [line, quit, rest] = withStdin[i]!.stdin!.split('\n');
      assert.deepEqual([dsclTokens(line!), quit, rest], [['passwd', '/Users/jtstdin', pw], 'quit', '']);
    }
    assert.equal(mac.disabled('jtstdin'), true);
  });

  it('refuses a password dscl could misread (newline, quotes, spaces…) before running anything', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtpw'), macPassword());
    const bad = [
      'abc\npasswd /Users/root owned', 'abc\rdef', 'abc\0def', 'abc def', 'abc\tdef', 'abc"def', "abc'def", 'abc\\def',
      'pässword', 'abc\u2019def', '', 'x'.repeat(129), contractPassword(),
    ];
    mac.calls.length = 0;
    for (const pw of bad) {
      await rejectsWith(backend.createDisabled(spec('jtpwnew'), pw), 'COMMAND_FAILED');
      await rejectsWith(backend.setPassword('jtpw', pw), 'COMMAND_FAILED');
      assert.throws(() => dsclPasswdScript('jtpw', pw), /printable ASCII/);
    }
    assert.equal(mac.calls.filter((c) => c.stdin !== undefined).length, 0);
    assert.ok(mac.calls.every((c) => c.file === MAC_BIN.dscl || c.argv.includes('checkmember')), 'only lookups ran');
    assert.equal(mac.users.has('jtpwnew'), false);
    // Why the restriction: under dscl's own splitter, the contract's hostile password would
    // reach dscl as other words than the one we meant.
    const hostile = contractPassword();
    assert.notDeepEqual(dsclTokens(`passwd /Users/jtpw ${hostile}`), ['passwd', '/Users/jtpw', hostile]);
  });

  it('accepts every password the agent generates', () => {
    for (let i = 0; i < 500; i++) {
      const pw = agentPassword();
      assert.match(pw, MAC_PASSWORD);
      assert.deepEqual(dsclTokens(`passwd /Users/jtx ${pw}`), ['passwd', '/Users/jtx', pw]);
    }
  });

  it('keeps the password out of errors even when dscl echoes its input', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtecho'), macPassword());
    mac.faults.passwdEchoesLine = true;
    const pw = macPassword();
    await assert.rejects(backend.setPassword('jtecho', pw), (e: unknown) => {
      assert.ok(e instanceof Error && !e.message.includes(pw) && /DS error/.test(e.message), String(e));
      return true;
    });
  });

  it('keeps the account disabled when setting the password re-enabled it', async () => {
    const { mac, backend } = recorded();
    mac.faults.passwdReenables = true;
    await backend.createDisabled(spec('jtreen'), macPassword());
    assert.equal(mac.disabled('jtreen'), true);
    await backend.setPassword('jtreen', macPassword());
    assert.equal(mac.disabled('jtreen'), true);
    await backend.enable('jtreen', inAnHour());
    await backend.setPassword('jtreen', macPassword());
    assert.equal((await backend.lookup('jtreen'))?.enabled, true);
  });

  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    const calls = macs.flatMap((m) => m.calls);
    assert.ok(calls.some((c) => c.stdin !== undefined));
    assertShellSafe(calls);
  });
});
