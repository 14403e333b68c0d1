/**
 * The `jit` command's end of the local channel (protocol/local.ts): one request per connection,
 * with the ownership proof the agent asks for.
 */
import { unlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Challenge, LocalAnswer, type LocalRequest } from '../../protocol/local.ts';
import { PROOF_DIR_NAME, SOCKET_NAME } from '../../protocol/localPaths.ts';

/** No agent answers: its socket is missing or nobody listens on it. */
export class NoAgent extends Error {}

export async function ask(dir: string, req: LocalRequest): Promise<LocalAnswer> {
  const sock = net.connect(path.join(dir, SOCKET_NAME));
  const lines: string[] = [];
  let buf = '';
  let wake: () => void = () => {};
  let failure: Error | null = null;
  sock.on('data', (d) => {
    buf += d.toString('utf8');
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    wake();
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    failure = ['ENOENT', 'ECONNREFUSED', 'EACCES'].includes(err.code ?? '') ? new NoAgent(err.code) : err;
    wake();
  });
  sock.on('close', () => wake());
  const nextLine = async (): Promise<string> => {
    while (!lines.length) {
      if (failure) throw failure;
      if (sock.destroyed) throw new Error('the agent closed the connection');
      await new Promise<void>((r) => (wake = r));
    }
    return lines.shift()!;
  };
  const { challenge } = Challenge.parse(JSON.parse(await nextLine()));
  const proof = path.join(dir, PROOF_DIR_NAME, challenge);
  try {
    await writeFile(proof, '', { flag: 'wx', mode: 0o600 });
    sock.write(`${JSON.stringify(req)}\n`);
    return LocalAnswer.parse(JSON.parse(await nextLine()));
  } finally {
    sock.destroy();
    await unlink(proof).catch(() => {});
  }
}

