import assert from 'node:assert/strict';
import { MAC_PASSWORD } from './os/macos.ts';
import { newAccountName, newPassword, PASSWORD_ALPHABETS, PASSWORD_LENGTH } from './credentials.ts';

const AMBIGUOUS = /[0Ol1I|]/;
const CLASSES = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/];

/**
 * log2 of how many passwords the generator can produce, each equally likely: strings of
 * PASSWORD_LENGTH whose first and last characters come from `edge` and the others from
 * `inner`, keeping those with every class (inclusion–exclusion over the classes left out).
 */
function entropyBits(): number {
  const { edge, inner } = PASSWORD_ALPHABETS;
  const classOf = (c: string) => CLASSES.findIndex((re) => re.test(c));
  let count = 0n;
  for (let mask = 0; mask < 1 << CLASSES.length; mask++) {
    // Strings avoiding every class in `mask`.
    const allowed = (alphabet: string) => BigInt([...alphabet].filter((c) => !(mask & (1 << classOf(c)))).length);
    const n = allowed(edge) ** 2n * allowed(inner) ** BigInt(PASSWORD_LENGTH - 2);
    const bits = mask.toString(2).split('1').length - 1;
    count += bits % 2 === 0 ? n : -n;
  }
  return Math.log2(Number(count));
}

describe('credentials', () => {
  it('has at least 128 bits of entropy, computed from the alphabets and the length', () => {
    const { edge, inner } = PASSWORD_ALPHABETS;
    for (const a of [edge, inner]) assert.equal(new Set(a).size, a.length, 'no repeated characters');
    const bits = entropyBits();
    assert.ok(bits >= 128, `${bits.toFixed(1)} bits`);
  });

  it('uses no ambiguous characters and no punctuation that reads as the end of a sentence', () => {
    const { edge, inner } = PASSWORD_ALPHABETS;
    assert.doesNotMatch(edge + inner, AMBIGUOUS);
    assert.doesNotMatch(edge + inner, /[,.;:'"`$\\\s]/);
  });

  it('10,000 samples: complexity always met, no ambiguous characters, never ending in , . ;, valid for macOS', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const p = newPassword();
      assert.equal(p.length, PASSWORD_LENGTH);
      for (const re of CLASSES) assert.match(p, re, p);
      assert.doesNotMatch(p, AMBIGUOUS, p);
      assert.doesNotMatch(p, /[,.;]$/, p);
      assert.doesNotMatch(p, /[:'"`$\\\s]/, p);
      assert.match(p, MAC_PASSWORD, p);
      seen.add(p);
    }
    assert.equal(seen.size, 10_000);
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
