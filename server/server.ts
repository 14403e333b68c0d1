/**
 * Wires the server together: database (embedded FerretDB unless MONGODB_URI),
 * scheduler, HTTP. `startServer` is used by main.ts, the demo and the tests.
 */
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Db } from 'mongodb';
import pino, { type Logger } from 'pino';
import { AgentHub } from './agents/hub.ts';
import { Presence } from './agents/presence.ts';
import { expireDue } from './commands/decideRequest.ts';
import { queueInstruction } from './commands/instructions.ts';
import { REPAIR_EVERY_MS, repairRevokes } from './commands/revokeRepair.ts';
import { scheduleGrantJobs } from './commands/scheduleGrant.ts';
import { SmtpTests } from './agents/smtpTests.ts';
import { ServerMailer } from './mail/mailer.ts';
import type { ServerConfig } from './config.ts';
import type { Ctx } from './context.ts';
import { createAgenda, schedulerErrorLogger } from './db/agenda.ts';
import { connectDb } from './db/connect.ts';
import { startFerretDB } from './db/ferret.ts';
import { SerialQueues } from './db/serialQueues.ts';
import { LIVE_STATES, hasAccount } from './domain/lifecycle.ts';
import { createApp } from './http/app.ts';
import { setupOutageHandling } from './journal/setup.ts';
import { agendaScheduler, defineJobs } from './scheduler/agendaScheduler.ts';
import { collections, ensureIndexes, type GrantDoc } from './store/collections.ts';
import { EndpointCache } from './store/endpoints.ts';
import { PolicyRevisions } from './store/policyRevisions.ts';

export interface RunningServer {
  url: string;
  ctx: Ctx;
  db: Db;
  stop(): Promise<void>;
}

export async function startServer(config: ServerConfig, log: Logger = pino({ name: 'jit-server' })): Promise<RunningServer> {
  const embedded = config.mongodbUri ? null : await startFerretDB({ dataDir: path.resolve(config.dataDir, 'db'), log: (m) => log.info(m) });
  const uri = config.mongodbUri ?? embedded!.uri;
  const live = await startupWork(uri, config);
  const client = await connectDb(uri, config.db);
  const db = client.db();
  const c = collections(db);

  const agenda = createAgenda(db, { processEvery: config.schedulerProcessEvery, name: 'jit-server' });
  const hub = new AgentHub();
  // The mailer needs the context it is part of, hence the two steps.
  const ctx = {
    config,
    c,
    hub,
    scheduler: agendaScheduler(agenda, db),
    smtpTests: new SmtpTests(hub),
    presence: new Presence(c, hub, (config.longPollSeconds + 10) * 1000),
    endpointCache: new EndpointCache(c),
    policyRevisions: new PolicyRevisions(c),
    grantLocks: new SerialQueues(),
    log,
  } as Ctx;
  ctx.mailer = new ServerMailer(ctx);
  const startup = defineJobs(agenda, ctx);
  agenda.on('error', schedulerErrorLogger(log));
  await agenda.start();
  await rebuildSchedule(ctx, live);
  // Revoke journal and live-grants index; replays revokes journaled during a database outage.
  const outage = await setupOutageHandling(ctx, db, live);
  // Revokes a database outage or a crash left half-done (revokeRepair.ts): now, then every minute.
  await repairRevokes(ctx, 0, live);
  const repair = setInterval(() => {
    repairRevokes(ctx).catch((err: unknown) => ctx.log.warn({ err }, 'repair of half-done revokes failed; tried again in a minute'));
    // Pending requests whose time is up (also expired by whoever reads one first).
    expireDue(ctx).catch((err: unknown) => ctx.log.warn({ err }, 'expiring requests failed; tried again in a minute'));
  }, REPAIR_EVERY_MS);
  repair.unref();

  const http = createApp(ctx).listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => http.once('listening', resolve).once('error', reject));
  startup.listening();
  const { port } = http.address() as AddressInfo;
  const url = `http://${config.host}:${port}`;
  log.info({ url, database: embedded ? 'embedded FerretDB' : 'MongoDB' }, 'server listening');

  return {
    url,
    ctx,
    db,
    async stop() {
      ctx.hub.notifyAll();
      ctx.mailer.stop();
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
      outage.stop();
      clearInterval(repair);
      await agenda.stop();
      await ctx.presence.flush().catch((err: Error) => log.warn({ err }, 'could not store last-seen times'));
      await client.close();
      await embedded?.stop();
    },
  };
}

/**
 * What a start needs the database for before anything else uses it: index builds and
 * the data migration (ensureIndexes), then the live grants (for the schedule rebuild,
 * the live-grants index and the repair of half-done revokes). On a client of its own
 * without the socket timeout (db/connect.ts): over a large database these calls may
 * need longer than a request's, and a start that fails on them would fail again at
 * every retry. Closed before the server's own client starts working, so FerretDB
 * still sees one writer at a time.
 */
async function startupWork(uri: string, config: ServerConfig): Promise<GrantDoc[]> {
  const startup = await connectDb(uri, config.db, 'startup');
  try {
    const c = collections(startup.db());
    await ensureIndexes(c);
    // Not an _id filter: a scan on FerretDB, once per start.
    return await c.grants.find({ state: { $in: [...LIVE_STATES] } }).toArray();
  } finally {
    await startup.close();
  }
}

/**
 * The grants are the truth and jobs a cache of them: make sure every live
 * grant has its deadlines scheduled (a crash between insert and schedule loses
 * nothing). Unique jobs make this a no-op for grants already scheduled.
 */
async function rebuildSchedule(ctx: Ctx, live: GrantDoc[]): Promise<void> {
  for (const g of live) {
    await scheduleGrantJobs(ctx, g);
    // Server-side emails in flight died with the last process, and their password with it:
    // the agent sets a new one and hands it over again.
    const unsent = g.serverSideSmtp && g.delivery.status !== 'sent' && hasAccount(g.state);
    if (unsent && g.endAt > new Date()) await queueInstruction(ctx, g, 'resend');
  }
}
