import assert from 'node:assert/strict';
import { utcParam } from './page.ts';

describe('console date filters', () => {
  // Node applies a changed TZ at once: a server outside UTC must still read the filters as UTC.
  const zone = process.env.TZ;
  before(() => {
    process.env.TZ = 'Europe/Paris';
  });
  after(() => {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });

  it('read a datetime-local value as UTC, whatever the server time zone', () => {
    assert.equal(utcParam('2025-01-31T14:05')?.toISOString(), '2025-01-31T14:05:00.000Z');
  });

  it('read empty or malformed values as no filter', () => {
    assert.equal(utcParam(''), null);
    assert.equal(utcParam('yesterday'), null);
    assert.equal(utcParam('2025-01-31T14:05Z'), null);
  });
});
