/**
 * npm run demo: the whole product on this machine — embedded database, the
 * server on localhost, a local agent in sandbox mode, a local SMTP server whose
 * mail is printed, and a first grant whose timeline is printed as it happens,
 * steps and emails in the order they happened. Ctrl-C stops everything and says what.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { makeSandboxRoot } from '../agent/os/sandboxRoot.ts';
import { defaultConfig } from '../server/config.ts';
import { freePort } from '../server/db/ports.ts';
import { startServer } from '../server/server.ts';
import { createUser } from '../server/web/users.ts';

/** This machine's name as a DNS label (the server refuses others, e.g. with an underscore), plus -sandbox. */
const DEMO_HOST = `${os.hostname().split('.')[0]!.replace(/[^A-Za-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'demo'}-sandbox`;
import { startSmtpServer } from '../test/support/smtp.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const DATA = path.join(REPO, '.data', 'demo');
const LEAD_SECONDS = 20;

await rm(DATA, { recursive: true, force: true });
await mkdir(DATA, { recursive: true });
const adminToken = randomBytes(18).toString('hex');
// A real local SMTP server (STARTTLS + AUTH, self-signed certificate) that catches every email.
const smtpPassword = randomBytes(12).toString('hex');
const mailbox = await startSmtpServer({ users: { demo: smtpPassword } });
const port = Number(process.env.PORT) || (await freePort());
const logStream = createWriteStream(path.join(DATA, 'server.log'));
console.log('Starting the embedded database and the server…');
const server = await startServer(
  { ...defaultConfig(), port, dataDir: DATA, adminToken, leadTimeSeconds: LEAD_SECONDS, schedulerProcessEvery: 500, secretKey: randomBytes(32).toString('hex') },
  pino({ level: 'info' }, logStream),
);
const api = async (method: string, p: string, body?: unknown) => {
  const res = await fetch(`${server.url}${p}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return res.json() as Promise<any>;
};

const consolePassword = randomBytes(9).toString('base64url');
await createUser(server.ctx, { email: 'admin@demo.example', role: 'admin', password: consolePassword }, 'demo');

const smtpSettings = (from: string) => ({ host: '127.0.0.1', port: mailbox.port, security: 'starttls', username: 'demo', password: smtpPassword, from, organisation: 'Demo Corp', timeZone: 'UTC', tlsCa: mailbox.ca });
for (const [p, from] of [['/api/v1/agent-settings', 'JIT Access <jit-agent@demo.example>'], ['/api/v1/server-smtp', 'JIT Access <jit-server@demo.example>']] as const) {
  const res = await api('PUT', p, smtpSettings(from));
  if (res.error) throw new Error(`PUT ${p}: ${JSON.stringify(res.error)}`);
}

const sandbox = await makeSandboxRoot();
const stateFile = path.join(DATA, 'agent-state.json');
const agentArgs = (...a: string[]) => [process.execPath, ['--import', 'tsx', 'agent/main.ts', ...a]] as const;
const { token } = await api('POST', '/api/v1/enrollment-tokens');
await new Promise<void>((resolve, reject) => {
  const p = spawn(...agentArgs('enroll', '--server', server.url, '--token', token, '--state', stateFile, '--sandbox-root', sandbox.root, '--hostname', DEMO_HOST), { cwd: REPO, stdio: 'inherit' });
  p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`agent enroll exited ${code}`))));
});
const agentLog = createWriteStream(path.join(DATA, 'agent.log'));
const agent = spawn(...agentArgs('run', '--state', stateFile, '--poll-seconds', '20'), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
agent.stdout.pipe(agentLog);
agent.stderr.pipe(agentLog);

const start = new Date(Date.now() + 40_000);
const end = new Date(start.getTime() + 60_000);
const { grants } = await api('POST', '/api/v1/grants', {
  operation: 'temporary-access',
  email: 'end.user@example.com',
  endpoints: [DEMO_HOST],
  group: 'Administrators',
  startAt: start.toISOString(),
  endAt: end.toISOString(),
  serverSideSmtp: false,
});
const grant = grants[0];

console.log(`
  Console     ${server.url}/   log in as admin@demo.example / ${consolePassword}
  API         ${server.url}/api/v1   (admin token: ${adminToken})
  Database    embedded FerretDB in ${path.relative(REPO, DATA)}/db
  Agent       sandbox root ${sandbox.root} (accounts never touch this machine's /etc)
  Mail        local SMTP server on 127.0.0.1:${mailbox.port} (STARTTLS, AUTH); every email is printed below
  Logs        ${path.relative(REPO, DATA)}/server.log, agent.log

  First grant ${grant.id}
    created disabled now, enabled at ${grant.enableAt} (start − ${LEAD_SECONDS} s; 3 min in production),
    access ${grant.startAt} → ${grant.endAt}, then logged off and deleted.

  Try:  curl -s -H 'authorization: Bearer ${adminToken}' ${server.url}/api/v1/grants/${grant.id}

Timeline (Ctrl-C to stop):`);

let stopping = false;
process.once('SIGINT', () => void shutdown('Ctrl-C'));
process.once('SIGTERM', () => void shutdown('SIGTERM'));

/**
 * Steps and emails are printed in the order they happened, not the order they are seen:
 * an agent sends the access-ended email right after deleting the account, often before its
 * report of the deletion reaches the server. So agent steps count at the agent's time
 * (`agentAt`), emails at their arrival, and a line waits HOLD_MS before it is printed in
 * case something earlier is still on its way.
 */
const HOLD_MS = 3000;
type Line = { at: number; text: string };
const queue: Line[] = [];
const hhmmss = (ms: number) => new Date(ms).toISOString().slice(11, 19);
let shown = 0;
let mailsSeen = 0;
let done = false;
while (!stopping) {
  for (const m of mailbox.messages.slice(mailsSeen)) {
    const at = (mailbox.receivedAt(m) ?? new Date()).getTime();
    const to = m.to && 'text' in m.to ? m.to.text : '';
    queue.push({ at, text: `  ${hhmmss(at)}  ── email from ${m.from?.text ?? ''} to ${to}: ${m.subject}\n${(m.text ?? '').replace(/^/gm, '     ')}\n` });
  }
  mailsSeen = mailbox.messages.length;
  // Ctrl-C may stop the server while this request is under way.
  const g = await api('GET', `/api/v1/grants/${grant.id}`).catch((err: Error) => {
    if (stopping) return null;
    throw err;
  });
  if (!g) break;
  for (const e of g.timeline.slice(shown)) {
    const d = e.detail as Record<string, unknown>;
    const at = Date.parse(typeof d.agentAt === 'string' ? d.agentAt : e.at);
    const detail = Object.entries(d)
      .filter(([k]) => ['username', 'detail', 'kind', 'to', 'step', 'reason'].includes(k))
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    queue.push({ at, text: `  ${hhmmss(at)}  ${e.type.padEnd(30)} ${detail}` });
  }
  shown = g.timeline.length;
  const ended = ['removed', 'revoked', 'failed'].includes(g.state) && mailsSeen >= 2;
  queue.sort((a, b) => a.at - b.at);
  while (queue.length > 0 && (ended && done ? true : queue[0]!.at <= Date.now() - HOLD_MS)) console.log(queue.shift()!.text);
  if (ended && done && queue.length === 0) {
    console.log(`\nThe grant is ${g.state}. The server and agent keep running for you to try the API; Ctrl-C to stop.`);
    break;
  }
  // One more round after the end, HOLD_MS later, so late reports still find their place.
  if (ended && !done) {
    done = true;
    await sleep(HOLD_MS);
    continue;
  }
  await sleep(500);
}

async function shutdown(why: string) {
  if (stopping) return;
  stopping = true;
  console.log(`\n${why}: stopping the demo.`);
  const step = async (what: string, run: () => Promise<unknown>) => {
    try {
      await run();
      console.log(`  stopped ${what}`);
    } catch (err) {
      console.log(`  ${what}: ${(err as Error).message}`);
    }
  };
  await step(`the agent (pid ${agent.pid})`, () =>
    new Promise<void>((resolve) => {
      if (agent.exitCode !== null || agent.signalCode !== null) return resolve();
      agent.once('exit', () => resolve());
      agent.kill('SIGTERM');
    }),
  );
  await step(`the server (${server.url}) and the embedded database`, () => server.stop());
  await step(`the SMTP server (127.0.0.1:${mailbox.port})`, () => mailbox.stop());
  await step(`the sandbox root (${sandbox.root}, removed)`, () => sandbox.cleanup());
  console.log(`Left in place: ${path.relative(REPO, DATA)}/ (database, server.log, agent.log), removed at the next npm run demo.`);
  process.exit(0);
}
