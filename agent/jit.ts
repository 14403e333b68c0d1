/**
 * jit: the command for the person at the endpoint (no root needed). It talks only to the local
 * agent (protocol/local.ts), which answers for the OS account that runs it.
 *
 *   jit status [--json]            my grants on this machine: group, time left, what happens at the end
 *   jit end [GRANT-ID] [--json]    end my grant now (the only one, or the one named)
 *   jit request --group G --for D [--reason R] [--wait] [--json]
 *                                  ask for G for my own account here; the rules decide at once or an
 *                                  approver does (--wait: until then)
 *
 * Exit codes: 0 done (a request filed or approved); 1 refused (not yours, ended already, not
 * proven, denied, expired, the server said no or could not be reached); 2 usage; 3 the agent is
 * not running. JIT_AGENT_DIR overrides the agent's folder.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { GROUPS, type Group } from '../protocol/groups.ts';
import type { LocalAnswer, LocalRequest } from '../protocol/local.ts';
import { SOCKET_NAME, localDir } from '../protocol/localPaths.ts';
import { NoAgent, ask } from './local/client.ts';
import { describeGrant, describeRequest, parseDuration, requestLine } from './local/text.ts';

export const EXIT = { ok: 0, refused: 1, usage: 2, noAgent: 3 } as const;

const USAGE = `usage:
  jit status [--json]           your grants on this machine and the time left
  jit end [GRANT-ID] [--json]   end your grant now (the only one you have, or the one named)
  jit request --group GROUP --for DURATION [--reason TEXT] [--wait] [--json]
                                ask for GROUP (${GROUPS.join(', ')}) for your own account here,
                                for DURATION (90m, 2h, 1h30m); --wait: until it is decided`;

/** How often --wait asks again. */
const WAIT_POLL_MS = 2000;

class Usage extends Error {}

interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export async function main(argv: string[], io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  const dir = process.env.JIT_AGENT_DIR ?? localDir(process.platform);
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean' }, group: { type: 'string' }, for: { type: 'string' }, reason: { type: 'string' }, wait: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    const [command, ...rest] = positionals;
    const json = values.json ?? false;
    const talk = (req: LocalRequest) => ask(dir, req);
    if (command === 'status' || command === 'end') {
      if (rest.length > (command === 'end' ? 1 : 0)) throw new Usage('too many arguments');
      const req = command === 'status' ? ({ op: 'status' } as const) : { op: 'end' as const, grantId: rest[0] ?? (await onlyGrant(talk)) };
      return show(await talk(req), json, io);
    }
    if (command === 'request') {
      if (rest.length) throw new Usage('too many arguments');
      const group = GROUPS.find((g) => g.toLowerCase() === values.group?.toLowerCase());
      if (!group) throw new Usage(`--group must be one of ${GROUPS.join(', ')}`);
      const minutes = values.for === undefined ? null : parseDuration(values.for);
      if (minutes === null) throw new Usage('--for must be a duration: 90m, 2h, 1h30m');
      let answer = await talk({ op: 'request', ask: { group: group as Group, minutes, reason: values.reason ?? '' } });
      while (values.wait && answer.ok && 'request' in answer && answer.request.state === 'pending') {
        await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
        answer = await talk({ op: 'request-state', requestId: answer.request.id });
      }
      return show(answer, json, io);
    }
    throw new Usage(command ? `unknown command ${JSON.stringify(command)}` : 'a command is needed');
  } catch (e) {
    if (e instanceof Usage || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err.write(`jit: ${(e as Error).message}\n${USAGE}\n`);
      return EXIT.usage;
    }
    if (e instanceof NoAgent) {
      io.err.write(`jit: the jit-access agent is not running on this machine (no answer at ${path.join(dir, SOCKET_NAME)})\n`);
      return EXIT.noAgent;
    }
    io.err.write(`jit: ${(e as Error).message}\n`);
    return EXIT.refused;
  }
}

/** `jit end` without an id: the caller's only live grant. */
async function onlyGrant(talk: (req: LocalRequest) => Promise<LocalAnswer>): Promise<string> {
  const status = await talk({ op: 'status' });
  const live = status.ok && 'grants' in status ? status.grants.filter((g) => g.state !== 'ending') : [];
  if (live.length > 1) throw new Usage(`you have ${live.length} grants here: name one (jit status lists them)`);
  if (!live.length) throw new Error('you have no grant to end on this machine');
  return live[0]!.grantId;
}

/** Prints the agent's answer (as JSON, or for a person) and says how it went. */
function show(answer: LocalAnswer, json: boolean, { out, err }: Io): number {
  if (json) out.write(`${JSON.stringify(answer, null, 2)}\n`);
  if (!answer.ok) {
    if (!json) err.write(`jit: ${answer.message}\n`);
    return answer.code === 'bad_request' ? EXIT.usage : EXIT.refused;
  }
  if ('request' in answer) {
    if (!json) out.write(`${describeRequest(answer.request)}\n`);
    return ['approved', 'pending'].includes(answer.request.state) ? EXIT.ok : EXIT.refused;
  }
  if (json) return EXIT.ok;
  if ('ended' in answer) {
    const e = answer.ended;
    out.write(`Ended: ${e.group} for ${e.account}. ${e.atEnd === 'logoff' ? 'Your sessions end now: you will be logged off.' : 'The access is being removed now.'}\n`);
  } else {
    const now = Date.parse(answer.now);
    if (!answer.grants.length) out.write(`${answer.user}: no temporary access on ${answer.hostname}.\n`);
    else out.write(`${answer.user} on ${answer.hostname}:\n${answer.grants.map((g) => describeGrant(g, now)).join('\n')}\n`);
    if (answer.requests === null) out.write('Requests: the server could not be asked just now.\n');
    else if (answer.requests.length) out.write(`Requests:\n${answer.requests.map(requestLine).join('\n')}\n`);
  }
  return EXIT.ok;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
