/**
 * The agent's end of the local channel (protocol/local.ts): a Unix socket anyone on the machine
 * may connect to, one request per connection, answered for the OS account that proved itself
 * (proof.ts). Linux and macOS; on Windows the `jit` command is not offered yet.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import type { LocalAnswer, LocalRequest } from '../../protocol/local.ts';
import { PROOF_DIR_NAME, SOCKET_NAME } from '../../protocol/localPaths.ts';
import { ProofFolder } from './proof.ts';

/** A request line longer than this is refused (the largest real one is under 200 bytes). */
const MAX_LINE = 4096;
/** A client that has not sent its request line by then is dropped. */
const IDLE_MS = 10_000;
/** `after` waits for the client to close at most this long. */
const AFTER_ANSWER_MS = 1000;

/** The answer, and what to do once the client has it (or has gone, or after AFTER_ANSWER_MS). */
export type LocalHandler = (req: LocalRequest, account: string) => Promise<{ answer: LocalAnswer; after?: () => void }>;
/** The account name of a uid on this machine, or null. */
export type AccountOfUid = (uid: number) => Promise<string | null>;

export class LocalChannel {
  private server: net.Server | null = null;
  private readonly proof: ProofFolder;

  constructor(
    private readonly dir: string,
    private readonly handle: LocalHandler,
    private readonly accountOf: AccountOfUid,
    private readonly log: Logger,
  ) {
    this.proof = new ProofFolder(path.join(dir, PROOF_DIR_NAME));
  }

  get socketPath(): string {
    return path.join(this.dir, SOCKET_NAME);
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    await chmod(this.dir, 0o755);
    await this.proof.prepare();
    await rm(this.socketPath, { force: true });
    const server = net.createServer((sock) => this.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    // Everyone may connect: who is asking is proven per request, not by who may open the socket.
    await chmod(this.socketPath, 0o666);
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private serve(sock: net.Socket): void {
    const challenge = this.proof.challenge();
    let buf = '';
    let asked = false;
    const answer = ({ answer: a, after }: { answer: LocalAnswer; after?: () => void }) => {
      sock.end(`${JSON.stringify(a)}\n`);
      if (!after) return;
      const once = () => {
        clearTimeout(timer);
        sock.off('close', once);
        after();
      };
      const timer = setTimeout(once, AFTER_ANSWER_MS);
      sock.once('close', once);
    };
    sock.setTimeout(IDLE_MS, () => sock.destroy());
    sock.on('error', () => {});
    sock.write(`${JSON.stringify({ challenge })}\n`);
    sock.on('data', (chunk) => {
      if (asked) return;
      buf += chunk.toString('utf8');
      if (buf.length > MAX_LINE) {
        asked = true;
        return answer({ answer: { ok: false, code: 'bad_request', message: 'request too long' } });
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      asked = true;
      // Asked in time: the answer may take a server call (15 s at most, agent/client.ts).
      sock.setTimeout(0);
      void this.answerLine(buf.slice(0, nl), challenge).then(answer, (err: Error) => {
        this.log.error({ err: err.message }, 'local request failed');
        answer({ answer: { ok: false, code: 'bad_request', message: 'the agent could not answer: see its log' } });
      });
    });
  }

  private async answerLine(line: string, challenge: string): ReturnType<LocalHandler> {
    const refuse = (code: 'bad_request' | 'not_proven', message: string) => ({ answer: { ok: false as const, code, message } });
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return refuse('bad_request', 'not JSON');
    }
    // The schemas on first use: an idle agent that nobody asks keeps them out of its memory.
    const { LocalRequest } = await import('../../protocol/local.ts');
    const req = LocalRequest.safeParse(json);
    if (!req.success) return refuse('bad_request', req.error.issues.map((i) => `${i.path.join('.') || 'request'}: ${i.message}`).join('; '));
    const uid = await this.proof.ownerOf(challenge);
    const account = uid === null ? null : await this.accountOf(uid);
    if (account === null) return refuse('not_proven', 'who is asking could not be proven (no proof file, or not a plain file of yours)');
    this.log.info({ op: req.data.op, account, ...(req.data.op === 'end' ? { grantId: req.data.grantId } : {}) }, 'local request');
    return this.handle(req.data, account);
  }
}
