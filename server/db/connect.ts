import { MongoClient, type MongoClientOptions } from 'mongodb';
import type { ServerConfig } from '../config.ts';

export type DbTimeouts = ServerConfig['db'];

/**
 * What a client is for: `requests` (the server's own client, with every limit below) or
 * `startup` (index builds, the data migration, the live-grants load at start, and the
 * command-line scripts): the same limits but no socket timeout, as those calls may
 * legitimately need the database for longer (an index built over a large audit log,
 * a migration's scan); it is closed once that work is done.
 */
export type DbPurpose = 'requests' | 'startup';

/**
 * The driver's time limits, so that no database call waits longer than a request may:
 * - serverSelectionTimeoutMS: with the database down, a call fails after this instead of
 *   the driver's 30 s;
 * - connectTimeoutMS: a new connection (and its handshake, and the monitor's heartbeat)
 *   to a database that accepts connections but never answers (frozen) gives up after this,
 *   instead of 30 s; a failed handshake clears the pool and marks the server unknown, so
 *   calls queued behind it fail at once;
 * - socketTimeoutMS: a call sent on a connection that then gets no answer fails after this
 *   and the connection is destroyed, so FerretDB's single pooled connection is never held
 *   by a frozen database. The long-poll and Agenda wait in this process (timers), not in a
 *   database call, so neither is cut by it. What it does cut is any single call that needs
 *   the server longer: a request's (an audit export over a large log, which FerretDB scans
 *   and sorts in memory, can; it then fails with 503 rather than hold the connection) and
 *   the start's (index builds, the migration, the live-grants load), which is why those
 *   run on a `startup` client without it;
 * - waitQueueTimeoutMS: a call waiting for that single connection gives up after this,
 *   so a call queued behind a stuck one never starts long after its request was answered.
 * `timeoutMS` (CSOT) is not used: driver 7.8 made it a no-op.
 */
function options(t: DbTimeouts, purpose: DbPurpose): MongoClientOptions {
  return {
    serverSelectionTimeoutMS: t.serverSelectionTimeoutMS,
    connectTimeoutMS: t.connectTimeoutMS,
    socketTimeoutMS: purpose === 'startup' ? 0 : t.socketTimeoutMS,
    waitQueueTimeoutMS: t.waitQueueTimeoutMS,
  };
}

/**
 * Connects to MongoDB or FerretDB.
 * Why one connection for FerretDB: its SQLite backend runs each update as a
 * read-then-write transaction, and two of those at once fail with SQLITE_BUSY
 * instead of waiting. FerretDB serves one connection's requests in order, so a
 * pool of one serialises them. MongoDB keeps the driver's normal pool. (A
 * `startup` client is used while nothing else writes: see server.ts.)
 */
export async function connectDb(uri: string, timeouts: DbTimeouts, purpose: DbPurpose = 'requests'): Promise<MongoClient> {
  const probe = await MongoClient.connect(uri, options(timeouts, purpose));
  const info = await probe.db('admin').command({ buildInfo: 1 });
  if (!info.ferretdbVersion) return probe;
  await probe.close();
  return MongoClient.connect(uri, { ...options(timeouts, purpose), maxPoolSize: 1 });
}
