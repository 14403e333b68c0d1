/**
 * The server under test, in its own process so its RSS and CPU are its own:
 * an embedded FerretDB (server/db/ferret.ts) and startServer on 127.0.0.1.
 * Sends {url, adminToken, requesterToken, ferretPid} over IPC; stops everything on `stop`.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { defaultConfig, type ServerConfig } from '../server/config.ts';
import { startFerretDB } from '../server/db/ferret.ts';
import { startServer } from '../server/server.ts';
import { createApiToken, createUser } from '../server/web/users.ts';

const dir = process.argv[2]!;
const leadTimeSeconds = Number(process.argv[3] ?? 3);
const adminToken = randomBytes(24).toString('hex');
const db = await startFerretDB({ dataDir: path.join(dir, 'db') });
const config: ServerConfig = {
  ...defaultConfig(),
  host: '127.0.0.1',
  port: 0,
  mongodbUri: `${db.uri.replace(/\/?$/, '/')}jit`,
  dataDir: dir,
  adminToken,
  leadTimeSeconds,
  longPollSeconds: 25,
  secretKey: randomBytes(32).toString('hex'),
};
const log = pino({ level: 'warn' }, createWriteStream(path.join(dir, 'server.log'), { flags: 'a' }));
const server = await startServer(config, log);
// A person who files requests (bench/requests.ts), with a personal API token.
const requester = await createUser(server.ctx, { email: 'bench-requester@example.com', role: 'requester', password: randomBytes(18).toString('hex') }, 'bench');
const requesterToken = await createApiToken(server.ctx, requester);
process.send?.({ type: 'ready', url: server.url, adminToken, requesterToken, ferretPid: db.pid });

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(1), 20_000).unref();
  await server.stop().catch(() => {});
  await db.stop().catch(() => {});
  process.exit(0);
}
process.on('message', (m: { type: string }) => m.type === 'stop' && void stop());
process.on('disconnect', () => void stop());
process.on('SIGTERM', () => void stop());
