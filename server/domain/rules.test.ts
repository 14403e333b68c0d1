import assert from 'node:assert/strict';
import { nextRequestState, REQUEST_STATES } from './requests.ts';
import { decide, RequestRules, type RequestFacts } from './rules.ts';

const facts = (extra: Partial<RequestFacts> = {}): RequestFacts => ({
  requesterEmail: 'Alice@Corp.example', requesterRole: 'requester', hostname: 'WS-042.corp', os: 'windows', tags: ['Kiosk', 'finance'], group: 'Administrators', minutes: 60,
  at: new Date('2026-12-02T09:30:00Z'), // a Wednesday
  ...extra,
});

describe('request rules (pure)', () => {
  it('first match wins; nothing matching needs an approver (the default rule)', () => {
    const rules = RequestRules.parse([
      { name: 'deny servers', hostnames: ['srv-*'], action: 'deny' },
      { name: 'workstations', hostnames: ['ws-???.corp'], maxMinutes: 120, action: 'auto-approve' },
      { name: 'workstations too', hostnames: ['ws-*'], action: 'deny' },
    ]);
    assert.deepEqual(decide(rules, facts()), { action: 'auto-approve', rule: 'workstations', approvers: [] });
    assert.equal(decide(rules, facts({ minutes: 121 })).rule, 'workstations too', 'over the duration: the next rule');
    assert.equal(decide(rules, facts({ hostname: 'srv-db' })).action, 'deny');
    assert.deepEqual(decide(rules, facts({ hostname: 'laptop-7' })), { action: 'require-approval', rule: 'default', approvers: [] });
    assert.equal(decide(rules, facts({ hostname: 'ws-0420.corp' })).rule, 'workstations too', '? is one character');
    assert.equal(decide(RequestRules.parse([{ name: 'dots', hostnames: ['a.b'], action: 'deny' }]), facts({ hostname: 'aXb' })).rule, 'default', 'a dot is a dot');
  });

  it('matches requester by email or role:, OS, group, weekday and hours (UTC, wrapping midnight)', () => {
    const one = (rule: Record<string, unknown>, f: Partial<RequestFacts> = {}) => decide(RequestRules.parse([{ name: 'r', action: 'auto-approve', ...rule }]), facts(f)).rule === 'r';
    assert.ok(one({ requesters: ['alice@corp.example'] }), 'email, without regard to case');
    assert.ok(one({ requesters: ['role:requester'] }));
    assert.ok(!one({ requesters: ['role:approver', 'bob@corp.example'] }));
    assert.ok(one({ requesters: ['group:Developers'] }, { requesterGroups: ['staff', 'developers'] }), 'an IdP group, without regard to case');
    assert.ok(!one({ requesters: ['group:developers'] }, { requesterGroups: ['staff'] }));
    assert.ok(!one({ requesters: ['group:developers'] }), 'a local user has no IdP groups');
    assert.ok(one({ os: ['windows'] }) && !one({ os: ['linux', 'macos'] }));
    assert.ok(one({ groups: ['Administrators'] }) && !one({ groups: ['Users'] }));
    assert.ok(one({ days: [1, 2, 3, 4, 5] }) && !one({ days: [0, 6] }));
    assert.ok(one({ hours: { from: 8, to: 18 } }) && !one({ hours: { from: 10, to: 18 } }));
    assert.ok(one({ hours: { from: 22, to: 10 } }), 'wraps midnight');
    assert.ok(!one({ hours: { from: 22, to: 6 } }));
  });

  it('matches endpoint tags: one of the rule\'s is enough, in any letter case; an untagged endpoint matches no tags condition', () => {
    const rules = RequestRules.parse([
      { name: 'prod needs lead', tags: ['prod', 'PCI'], action: 'require-approval', approvers: ['lead@corp.example'] },
      { name: 'kiosks at once', tags: ['KIOSK'], groups: ['Administrators'], action: 'auto-approve' },
      { name: 'tagged rest', tags: ['finance'], action: 'deny' },
    ]);
    assert.equal(decide(rules, facts()).rule, 'kiosks at once', 'Kiosk on the endpoint, KIOSK in the rule');
    assert.equal(decide(rules, facts({ tags: ['pci', 'kiosk'] })).rule, 'prod needs lead', 'one of the rule\'s tags is enough; first match wins');
    assert.equal(decide(rules, facts({ group: 'Users' })).rule, 'tagged rest', 'the other conditions still count');
    assert.equal(decide(rules, facts({ tags: [] })).rule, 'default', 'no tags: no tags condition matches');
    assert.equal(decide(rules, facts({ tags: ['prod-2'] })).rule, 'default', 'a tag is matched whole, not as a prefix');
  });

  it('refuses a malformed rule list', () => {
    for (const bad of [[{ name: 'x', action: 'maybe' }], [{ action: 'deny' }], [{ name: 'x', action: 'deny', colour: 'red' }], [{ name: 'x', action: 'deny', approvers: ['not an email'] }],
      [{ name: 'x', action: 'deny', tags: [] }], [{ name: 'x', action: 'deny', tags: ['has space'] }], [{ name: 'x', action: 'deny', tags: ['x'.repeat(41)] }], [{ name: 'x', action: 'deny', tags: 'prod' }]]) {
      assert.equal(RequestRules.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });
});

describe('request lifecycle (pure)', () => {
  it('only a pending request moves, once, to where the event says', () => {
    assert.equal(nextRequestState('pending', { type: 'approve' }), 'approved');
    assert.equal(nextRequestState('pending', { type: 'deny' }), 'denied');
    assert.equal(nextRequestState('pending', { type: 'expire' }), 'expired');
    assert.equal(nextRequestState('pending', { type: 'cancel' }), 'cancelled');
    for (const s of REQUEST_STATES.filter((x) => x !== 'pending')) {
      for (const type of ['approve', 'deny', 'expire', 'cancel'] as const) assert.equal(nextRequestState(s, { type }), null, `${s} + ${type}`);
    }
  });
});
