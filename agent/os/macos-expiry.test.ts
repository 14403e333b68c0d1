/**
 * The hard-expiry backstop (what still ends access when the agent is dead) against the
 * RECORDED macOS (test/support/fakeMac.ts), whose `pwpolicy -authentication-allowed` honours
 * DisabledUser, the deprecated -setpolicy hard expiry date and -setaccountpolicies policies.
 */
import assert from 'node:assert/strict';
import { assertShellSafe, DISABLED, type FakeMac, lines, macPassword, readAccountPolicies, recordedMac, spec } from '../../test/support/fakeMac.ts';
import { rejectsWith } from './contract.ts';
import { MAC_BIN } from './macos.ts';
import { EXPIRY_CONTENT, EXPIRY_PARAMETER, expiryEpochSeconds, expiryPolicyPlist, policyExpiry } from './macos-plist.ts';

const macs: FakeMac[] = [];
const recorded = () => recordedMac(macs);

/** Runs pwpolicy -authentication-allowed through the model, as a tester on the Mac would. */
async function allowed(mac: FakeMac, name: string, at: number): Promise<boolean> {
  mac.now = at;
  const r = await mac.run(MAC_BIN.pwpolicy, ['-u', name, '-n', '/Local/Default', '-authentication-allowed'], { okCodes: [0, 1] });
  return r.code === 0;
}

describe('MacBackend (recorded macOS): hard-expiry backstop', function () {
  // Item 23: -setpolicy is deprecated and day-granular (up to 24 h late).
  it('refuses authentication from the exact expiry instant on, not a day later', async () => {
    const { mac, backend } = recorded();
    const end = Date.parse('2030-03-10T22:00:00Z');
    await backend.createDisabled(spec('jtexp', 'Users', 'g1', new Date(end)), macPassword());
    // What stands if the agent dies after creating: lift the disable by hand to look at the expiry alone.
    const u = mac.user('jtexp');
    u.attrs.set('AuthenticationAuthority', u.attrs.get('AuthenticationAuthority')!.filter((v) => v !== DISABLED));
    assert.equal(await allowed(mac, 'jtexp', end - 1000), true, '1 s before the end');
    assert.equal(await allowed(mac, 'jtexp', end + 1000), false, '1 s after the end');

    const later = Date.parse('2031-07-04T01:00:00.250Z');
    await backend.enable('jtexp', new Date(later));
    assert.equal(await allowed(mac, 'jtexp', later - 1000), true);
    assert.equal(await allowed(mac, 'jtexp', later + 1000), false);
    assert.equal(u.legacyPolicy.size, 0, 'the deprecated -setpolicy is not used');
    assert.deepEqual(u.accountPolicies, [{ id: 'com.jit-access.hard-expiry', content: EXPIRY_CONTENT, params: { [EXPIRY_PARAMETER]: Math.ceil(later / 1000) } }]);
    mac.assertAllModelled();
  });

  it('writes a plist that parses, with the exact instant, rounded up to the second', () => {
    assert.equal(expiryEpochSeconds(new Date('2030-03-10T22:00:00.000Z')), 1899410400);
    assert.equal(expiryEpochSeconds(new Date('2030-03-10T22:00:00.001Z')), 1899410401);
    assert.throws(() => expiryEpochSeconds(new Date('nonsense')), /invalid expiry/);
    const xml = expiryPolicyPlist(new Date('2030-03-10T22:00:00Z'));
    assert.deepEqual(readAccountPolicies(xml), [{ id: 'com.jit-access.hard-expiry', content: 'policyAttributeCurrentTime < jitAccessExpiresAtEpochSeconds', params: { jitAccessExpiresAtEpochSeconds: 1899410400 } }]);
    assert.equal(policyExpiry(`Getting account policies for user <jt>\n${xml}`), 1899410400);
    assert.equal(policyExpiry(`Getting account policies for user <jt>\n${xml.replace('&lt;', '&gt;')}`), null, 'another content is not ours');
    assert.equal(policyExpiry('No account policies for user <jt>\n'), null);
  });

  it('does not enable an account whose backstop did not take, and passes the policy as a file', async () => {
    const { mac, backend } = recorded();
    await backend.createDisabled(spec('jtnobs'), macPassword());
    mac.faults.setpolicyIgnored = true;
    // Another instant than the one set at creation (an hour from then), which is still in place.
    await rejectsWith(backend.enable('jtnobs', new Date(Date.now() + 7_200_000)), 'COMMAND_FAILED');
    assert.equal(mac.disabled('jtnobs'), true, 'not enabled without its backstop');
    await rejectsWith(backend.enable('jtnobs', new Date('nonsense')), 'COMMAND_FAILED');
    const set = mac.calls.filter((c) => c.argv[4] === '-setaccountpolicies');
    assert.ok(set.length >= 2 && set.every((c) => /^\/.+\/jit-pwpolicy-\w+\/policy\.plist$/.test(c.argv[5]!)), lines(set).join('\n'));
  });

  it('runs only commands that render as shell lines bash parses back to the same argv', function () {
    assertShellSafe(macs.flatMap((m) => m.calls));
  });
});
