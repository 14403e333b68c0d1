/**
 * jit: the command for the person at the endpoint (no root needed). It talks only to the local
 * agent (protocol/local.ts), which answers for the OS account that runs it.
 *
 *   jit status [--json]          my grants on this machine: group, time left, what happens at the end
 *   jit end [GRANT-ID] [--json]  end my grant now (the only one, or the one named)
 *
 * Exit codes: 0 done; 1 the agent refused (not yours, ended already, not proven); 2 usage;
 * 3 the agent is not running (or its socket is not there). JIT_AGENT_DIR overrides the agent's folder.
 */
import { unlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Challenge, LocalAnswer, PROOF_DIR_NAME, SOCKET_NAME, localDir, type LocalGrant, type LocalRequest } from '../protocol/local.ts';

export const EXIT = { ok: 0, refused: 1, usage: 2, noAgent: 3 } as const;

const USAGE = `usage:
  jit status [--json]           your grants on this machine and the time left
  jit end [GRANT-ID] [--json]   end your grant now (the only one you have, or the one named)`;

class NoAgent extends Error {}

/** One request over the local socket, with the ownership proof the agent asks for. */
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

const clock = (iso: string) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** "1 h 59 min", "4 min 10 s", "12 s". */
export function timeLeft(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

function describe(g: LocalGrant, now: number): string {
  const what = g.operation === 'elevate-account' ? `${g.group} for your account ${g.account}` : `${g.group} for the temporary account ${g.account}`;
  const atEnd = g.atEnd === 'logoff' ? 'you will be logged off' : 'you are told, your sessions go on';
  const when =
    g.state === 'waiting' ? `starts ${clock(g.startAt)}, ends ${clock(g.endAt)}` :
    g.state === 'active' ? `ends ${clock(g.endAt)}, in ${timeLeft(Date.parse(g.endAt) - now)}; at the end ${atEnd}` :
    'ending now';
  return `  ${what}: ${g.state}, ${when}\n    grant ${g.grantId}`;
}

export async function main(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  } catch (e) {
    err.write(`jit: ${(e as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  const [command, ...rest] = parsed.positionals;
  const json = parsed.values.json ?? false;
  const dir = process.env.JIT_AGENT_DIR ?? localDir(process.platform);
  if (command !== 'status' && command !== 'end') {
    err.write(`jit: ${command ? `unknown command ${JSON.stringify(command)}` : 'a command is needed'}\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (rest.length > (command === 'end' ? 1 : 0)) {
    err.write(`jit: too many arguments\n${USAGE}\n`);
    return EXIT.usage;
  }
  try {
    let grantId = rest[0];
    if (command === 'end' && !grantId) {
      const status = await ask(dir, { op: 'status' });
      const live = status.ok && 'grants' in status ? status.grants.filter((g) => g.state !== 'ending') : [];
      if (live.length !== 1) {
        err.write(live.length ? `jit: you have ${live.length} grants here: name one (jit status lists them)\n` : 'jit: you have no grant to end on this machine\n');
        return live.length ? EXIT.usage : EXIT.refused;
      }
      grantId = live[0]!.grantId;
    }
    const answer = await ask(dir, command === 'status' ? { op: 'status' } : { op: 'end', grantId: grantId! });
    if (json) out.write(`${JSON.stringify(answer, null, 2)}\n`);
    if (!answer.ok) {
      if (!json) err.write(`jit: ${answer.message}\n`);
      return answer.code === 'bad_request' ? EXIT.usage : EXIT.refused;
    }
    if (json) return EXIT.ok;
    if ('ended' in answer) {
      const e = answer.ended;
      out.write(`Ended: ${e.group} for ${e.account}. ${e.atEnd === 'logoff' ? 'Your sessions end now: you will be logged off.' : 'The access is being removed now.'}\n`);
    } else {
      const now = Date.parse(answer.now);
      if (!answer.grants.length) out.write(`${answer.user}: no temporary access on ${answer.hostname}.\n`);
      else out.write(`${answer.user} on ${answer.hostname}:\n${answer.grants.map((g) => describe(g, now)).join('\n')}\n`);
    }
    return EXIT.ok;
  } catch (e) {
    if (e instanceof NoAgent) {
      err.write(`jit: the jit-access agent is not running on this machine (no answer at ${path.join(dir, SOCKET_NAME)})\n`);
      return EXIT.noAgent;
    }
    err.write(`jit: ${(e as Error).message}\n`);
    return EXIT.refused;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
