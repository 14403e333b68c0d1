import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decryptSecret, encryptSecret, parseKey } from './secretBox.ts';

describe('secretBox', () => {
  const key = randomBytes(32);

  it('round-trips, with a fresh IV each time', () => {
    const plain = 'smtp pässwörd: 🔑 !#%&*';
    const a = encryptSecret(plain, key);
    const b = encryptSecret(plain, key);
    assert.match(a, /^v1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    assert.notEqual(a, b);
    assert.ok(!a.includes('smtp'));
    assert.equal(decryptSecret(a, key), plain);
    assert.equal(decryptSecret(b, key), plain);
    assert.equal(decryptSecret(encryptSecret('', key), key), '');
  });

  it('detects tampering with the IV, tag or ciphertext', () => {
    const box = encryptSecret('secret', key);
    const parts = box.split(':');
    for (const i of [1, 2, 3]) {
      const bytes = Buffer.from(parts[i]!, 'base64');
      bytes[0]! ^= 1;
      const tampered = parts.map((p, j) => (j === i ? bytes.toString('base64') : p)).join(':');
      assert.throws(() => decryptSecret(tampered, key), /wrong key, or the data was tampered with/, `part ${i}`);
    }
  });

  it('refuses the wrong key', () => {
    const box = encryptSecret('secret', key);
    assert.throws(() => decryptSecret(box, randomBytes(32)), /wrong key/);
    assert.throws(() => decryptSecret(box, randomBytes(16)), /key must be 32 bytes/);
  });

  it('refuses malformed boxes', () => {
    const [, iv, tag, ct] = encryptSecret('secret', key).split(':');
    assert.throws(() => decryptSecret('plain text', key), /not a v1 secret box/);
    assert.throws(() => decryptSecret(`v2:${iv}:${tag}:${ct}`, key), /not a v1 secret box/);
    assert.throws(() => decryptSecret(`v1:${iv}:${tag}:${ct}:x`, key), /not a v1 secret box/);
    assert.throws(() => decryptSecret(`v1:${iv}:${tag!.slice(0, 8)}:${ct}`, key), /malformed/);
  });

  it('parses hex and base64 keys', () => {
    const raw = randomBytes(32);
    assert.deepEqual(parseKey(raw.toString('hex')), raw);
    assert.deepEqual(parseKey(raw.toString('hex').toUpperCase()), raw);
    assert.deepEqual(parseKey(`${raw.toString('base64')}\n`), raw);
  });

  it('refuses keys of the wrong size or format', () => {
    const bad = [
      '',
      randomBytes(32).toString('hex').slice(1),
      randomBytes(31).toString('base64'),
      randomBytes(33).toString('base64'),
      `${randomBytes(32).toString('base64').slice(0, -2)}!=`,
      'correct horse battery staple',
    ];
    for (const s of bad) assert.throws(() => parseKey(s), /64 hex characters or the base64 encoding of 32 bytes/, JSON.stringify(s));
  });
});
