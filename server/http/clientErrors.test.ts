import assert from 'node:assert/strict';
import { toApiError } from './clientErrors.ts';

describe('toApiError', () => {
  it('maps a URIError without a status (a decodeURIComponent of client input) to 400 request.bad_url, not 500', () => {
    let err: unknown;
    try {
      decodeURIComponent('%E0%A4%A');
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof URIError);
    const e = toApiError(err);
    assert.equal(e.status, 400);
    assert.equal(e.id, 'request.bad_url');
  });

  it('still maps any other error without a status to 500', () => {
    assert.equal(toApiError(new TypeError('x')).status, 500);
  });
});
