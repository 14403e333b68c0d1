import { MongoClient, type MongoClientOptions } from 'mongodb';
import type { ServerConfig } from '../config.ts';

export type DbTimeouts = ServerConfig['db'];

/** config/default.json's values, for callers without a configuration (scripts). */
export const DEFAULT_DB_TIMEOUTS: DbTimeouts = { serverSelectionTimeoutMS: 2000, connectTimeoutMS: 2000, socketTimeoutMS: 3000, waitQueueTimeoutMS: 3000 };

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
 *   by a frozen database. None of our calls legitimately waits on the server this long: the
 *   long-poll and Agenda wait in this process (timers), not in a database call;
 * - waitQueueTimeoutMS: a call waiting for that single connection gives up after this,
 *   so a call queued behind a stuck one never starts long after its request was answered.
 * `timeoutMS` (CSOT) is not used: driver 7.8 made it a no-op.
 */
function options(t: DbTimeouts): MongoClientOptions {
  return { serverSelectionTimeoutMS: t.serverSelectionTimeoutMS, connectTimeoutMS: t.connectTimeoutMS, socketTimeoutMS: t.socketTimeoutMS, waitQueueTimeoutMS: t.waitQueueTimeoutMS };
}

/**
 * Connects to MongoDB or FerretDB.
 * Why one connection for FerretDB: its SQLite backend runs each update as a
 * read-then-write transaction, and two of those at once fail with SQLITE_BUSY
 * instead of waiting. FerretDB serves one connection's requests in order, so a
 * pool of one serialises them. MongoDB keeps the driver's normal pool.
 */
export async function connectDb(uri: string, timeouts: DbTimeouts = DEFAULT_DB_TIMEOUTS): Promise<MongoClient> {
  const probe = await MongoClient.connect(uri, options(timeouts));
  const info = await probe.db('admin').command({ buildInfo: 1 });
  if (!info.ferretdbVersion) return probe;
  await probe.close();
  return MongoClient.connect(uri, { ...options(timeouts), maxPoolSize: 1 });
}
