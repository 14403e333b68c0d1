import assert from 'node:assert/strict';
import { next, type GrantState } from './lifecycle.ts';

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
});
