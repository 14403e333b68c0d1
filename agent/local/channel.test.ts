import assert from 'node:assert/strict';
import { chown, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { LocalRequest } from '../../protocol/local.ts';
import { LocalChannel } from './channel.ts';

const asRoot = process.platform !== 'win32' && process.getuid?.() === 0;

/** Speaks the protocol by hand: `prove(challenge)` may make (or not make) the proof file. */
async function talk(socket: string, line: string, prove: (challenge: string) => Promise<void>): Promise<any> {
  const sock = net.connect(socket);
  let buf = '';
  const lines: string[] = [];
  let wake = () => {};
  sock.on('data', (d) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    wake();
  });
  const next = async () => {
    while (!lines.length) await new Promise<void>((r) => (wake = r));
    return JSON.parse(lines.shift()!);
  };
  const { challenge } = await next();
  await prove(challenge);
  sock.write(line);
  const answer = await next();
  sock.destroy();
  return answer;
}

(asRoot ? describe : describe.skip)('local channel (the jit command\'s socket)', () => {
  let dir: string;
  let channel: LocalChannel;
  const asked: [LocalRequest, string][] = [];
  let afterRan = 0;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-channel-'));
    asked.length = 0;
    const accounts = new Map([[2_096_001, 'alice']]);
    channel = new LocalChannel(
      path.join(dir, 'run'),
      async (req, account) => {
        asked.push([req, account]);
        return { answer: { ok: true, user: account, hostname: 'h', now: new Date().toISOString(), grants: [], requests: null }, after: () => afterRan++ };
      },
      async (uid) => accounts.get(uid) ?? null,
      pino({ level: 'silent' }),
    );
    await channel.start();
  });
  afterEach(async () => {
    await channel.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const proveAs = (uid: number) => async (challenge: string) => {
    const f = path.join(dir, 'run', 'proof', challenge);
    await writeFile(f, '');
    await chown(f, uid, uid);
  };

  it('answers a request for the account whose uid owns the proof, then runs what comes after', async () => {
    assert.equal((await stat(channel.socketPath)).mode & 0o777, 0o666, 'anyone may connect');
    const a = await talk(channel.socketPath, '{"op":"status"}\n', proveAs(2_096_001));
    assert.equal(a.ok, true);
    assert.equal(a.user, 'alice');
    assert.deepEqual(asked, [[{ op: 'status' }, 'alice']]);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(afterRan, 1, 'once the client closed');
  });

  it('refuses without asking the handler: no proof, a uid with no account, bad JSON, an unknown op, a line too long', async () => {
    const none = await talk(channel.socketPath, '{"op":"status"}\n', async () => {});
    assert.deepEqual([none.ok, none.code], [false, 'not_proven']);
    const stranger = await talk(channel.socketPath, '{"op":"status"}\n', proveAs(2_096_999));
    assert.deepEqual([stranger.ok, stranger.code], [false, 'not_proven']);
    const bad = await talk(channel.socketPath, 'status please\n', proveAs(2_096_001));
    assert.deepEqual([bad.code, bad.message], ['bad_request', 'not JSON']);
    const op = await talk(channel.socketPath, '{"op":"sudo","grantId":"x"}\n', proveAs(2_096_001));
    assert.equal(op.code, 'bad_request');
    const long = await talk(channel.socketPath, `{"op":"end","grantId":"${'x'.repeat(5000)}"}\n`, proveAs(2_096_001));
    assert.deepEqual([long.code, long.message], ['bad_request', 'request too long']);
    assert.deepEqual(asked, []);
  });
});
