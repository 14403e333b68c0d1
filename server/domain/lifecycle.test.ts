import assert from 'node:assert/strict';
import { GRANT_STATES, next, type GrantEvent, type GrantState } from './lifecycle.ts';

const plain = { revokeRequested: false };

describe('grant lifecycle', () => {
  it('walks the happy path requested → provisioned → enabled → removed', () => {
    let s: GrantState = 'requested';
    for (const [type, want] of [['created', 'provisioned'], ['enabled', 'enabled'], ['removed', 'removed']] as const) {
      const t = next(s, { type }, plain);
      assert.equal(t?.to, want);
      s = t!.to;
    }
  });

  it('ends a revoked grant as revoked, not removed', () => {
    const t = next('enabled', { type: 'revoke' }, plain);
    assert.equal(t?.to, 'revoking');
    assert.equal(next('revoking', { type: 'removed' }, { revokeRequested: true })?.to, 'revoked');
  });

  it('ignores late and duplicate reports', () => {
    assert.equal(next('enabled', { type: 'created' }, plain), null);
    assert.equal(next('removed', { type: 'enabled' }, plain), null);
    assert.equal(next('removed', { type: 'removed' }, plain), null);
    assert.equal(next('failed', { type: 'revoke' }, plain), null);
  });

  it('reaches revocation-failed with a reason and still closes on a later removal', () => {
    const t = next('enabled', { type: 'overdue', reason: 'endpoint silent' }, plain);
    assert.deepEqual(t, { from: 'enabled', to: 'revocation-failed', reason: 'endpoint silent' });
    assert.equal(next('revocation-failed', { type: 'removed' }, plain)?.to, 'removed');
  });

  it('fails only a grant that never got its account', () => {
    assert.equal(next('requested', { type: 'failed', reason: 'x' }, plain)?.to, 'failed');
    assert.equal(next('enabled', { type: 'failed', reason: 'x' }, plain), null);
  });

  it('lets an agent that enabled before its created report arrived skip provisioned', () => {
    assert.equal(next('requested', { type: 'enabled' }, plain)?.to, 'enabled');
  });

  it('never enters a state twice, whatever the events (transition audit ids rely on it: store/audit.ts)', () => {
    const events: GrantEvent[] = [
      { type: 'created' }, { type: 'enabled' }, { type: 'removed' }, { type: 'failed', reason: 'x' },
      { type: 'revoke' }, { type: 'removal-failed', reason: 'x' }, { type: 'overdue', reason: 'x' },
    ];
    // Every state reachable from every state, walked depth first: a state that comes back is a cycle.
    const walk = (s: GrantState, revokeRequested: boolean, path: GrantState[]): void => {
      for (const e of events) {
        const revoked = revokeRequested || e.type === 'revoke';
        const t = next(s, e, { revokeRequested: revoked });
        if (!t) continue;
        assert.ok(!path.includes(t.to), `${[...path, t.to].join(' → ')} enters ${t.to} twice`);
        walk(t.to, revoked, [...path, t.to]);
      }
    };
    for (const s of GRANT_STATES) for (const r of [false, true]) walk(s, r, [s]);
  });
});
