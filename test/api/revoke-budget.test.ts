import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ADMIN_TOKEN, grantBody } from '../support/stack.ts';
import { OutageStack, timed } from '../support/outageStack.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How long a revoke waits for the database is the request's deadline less a margin for its
 * fallback (journal and push), not a constant: with a shorter deadline the revoke still
 * answers 202 journaled, instead of the deadline's 503 ("nothing done") while it goes on to
 * journal and push the revoke anyway.
 */
describe('the revoke budget follows the request deadline', function () {
  this.timeout(120_000);
  let s: OutageStack;

  before(async () => {
    s = await OutageStack.start({ requestDeadlineSeconds: 2 });
  });
  after(() => s?.stop());

  it('with a 2 s deadline and the database frozen, a revoke for a connected agent answers 202 journaled within it', async () => {
    const { body } = await s.api.request('POST', '/api/v1/enrollment-tokens');
    const { endpointId, credential } = (await s.api.request('POST', '/agent/v1/enroll', { token: body.token, hostname: 'budget-box', os: 'linux', agentVersion: 't' })).body;
    const grantId: string = (await s.api.request('POST', '/api/v1/grants', grantBody(endpointId, 600, 600))).body.grants[0].id;
    const agent = (p: string, init: RequestInit = {}) => timed(`${s.api.url}/agent/v1${p}`, { ...init, headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' } }, 30_000);
    const first = await agent('/instructions?wait=0');
    await agent('/acks', { method: 'POST', body: JSON.stringify({ ids: first.body.instructions.map((i: { id: string }) => i.id) }) });
    const poll = agent('/instructions?wait=30');
    for (let t0 = Date.now(); !s.server!.ctx.hub.isConnected(endpointId); await sleep(20)) assert.ok(Date.now() - t0 < 5000);
    s.freezeDb();
    const res = await timed(`${s.api.url}/api/v1/grants/${grantId}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    console.log(`      2 s deadline: ${res.status} after ${res.ms} ms`);
    assert.equal(res.status, 202, res.text);
    assert.ok(res.ms < 2000, `answered after ${res.ms} ms`);
    assert.equal(res.body.journaled, true);
    const polled = await poll;
    assert.ok(polled.body?.instructions?.some((i: { kind: string; grantId?: string }) => i.kind === 'revoke' && i.grantId === grantId), polled.text);
    s.thawDb();
    const journal = path.join(s.config.dataDir, 'journal', 'revokes.jsonl');
    for (let t0 = Date.now(); (await readFile(journal, 'utf8')).trim(); await sleep(100)) assert.ok(Date.now() - t0 < 15_000, 'the journal was never applied');
  });
});
