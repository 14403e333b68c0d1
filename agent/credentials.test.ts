import assert from 'node:assert/strict';
import { newAccountName, newPassword } from './credentials.ts';

describe('credentials', () => {
  it('makes passwords of 24 characters with all four classes and no unsafe characters', () => {
    for (let i = 0; i < 200; i++) {
      const p = newPassword();
      assert.equal(p.length, 24);
      for (const re of [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/]) assert.match(p, re);
      assert.doesNotMatch(p, /[:'"`$\\\s]/);
    }
  });

  it('makes names valid on every OS and skips taken ones', async () => {
    const seen: string[] = [];
    const name = await newAccountName(async (n) => {
      seen.push(n);
      return seen.length < 3;
    });
    assert.equal(seen.length, 3);
    assert.equal(name, seen[2]);
    assert.match(name, /^[a-z][a-z0-9]{11}$/);
  });

  it('gives up when every name is taken', async () => {
    await assert.rejects(newAccountName(async () => true), /free account name/);
  });
});
