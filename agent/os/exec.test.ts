import assert from 'node:assert/strict';
import { ExecError, run } from './exec.ts';

describe('run (every OS command the agent starts)', () => {
  it('kills a command that does not answer in time and fails it, even while a child of it holds the pipes', async () => {
    const t0 = Date.now();
    // sh starts a sleeping grandchild that inherits stdout, then hangs itself.
    const err = await run('sh', ['-c', 'sleep 30 & sleep 30'], { timeoutMs: 300 }).then(() => null, (e: unknown) => e);
    const took = Date.now() - t0;
    assert.ok(err instanceof ExecError, String(err));
    assert.equal(err.result.code, -1);
    assert.match(err.message, /^sh exited -1: \(killed: no answer within 0\.3 s\)/);
    assert.ok(took < 5_000, `failed after ${took} ms`);
  });

  it('passes stdin, collects the output and leaves a quick command alone', async () => {
    const r = await run('cat', [], { stdin: 'hello', timeoutMs: 5_000 });
    assert.equal(r.stdout, 'hello');
    await assert.rejects(run('sh', ['-c', 'echo nope >&2; exit 3']), (e: ExecError) => e.result.code === 3 && /sh exited 3: nope/.test(e.message));
  });
});
