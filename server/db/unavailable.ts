/**
 * Telling "the database is unreachable" apart from every other failure, so the
 * API and the console can answer 503 db.unavailable (try again) instead of a
 * 500 (our bug), and so the revoke path knows when to fall back to its journal.
 */
import {
  MongoError,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoOperationTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from 'mongodb';

/** A database call we gave up waiting for (see `within`). */
export class DbTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer from the database within ${ms} ms`);
    this.name = 'DbTimeoutError';
  }
}

/**
 * Server error codes that mean "this server cannot serve you right now":
 * shutting down, stepped down, not primary, network trouble between members,
 * a server-side time limit (MongoDB's retryable-read codes, plus MaxTimeMSExpired).
 */
const UNAVAILABLE_CODES = new Set([6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

/**
 * Driver errors the driver does not export as classes: a checkout that waited too
 * long for the (single, on FerretDB) pooled connection, and a pool closed at shutdown.
 */
const UNAVAILABLE_NAMES = new Set(['MongoWaitQueueTimeoutError', 'MongoPoolClosedError']);

/**
 * True when `err` (or what it wraps, through `cause`) says the database could not
 * be reached or did not answer in time: server selection timed out, the
 * connection failed, timed out or was cleared (MongoNetworkError covers
 * MongoNetworkTimeoutError and the pool-cleared errors), the client is closed,
 * or the server is shutting down or not primary.
 */
export function isDbUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof DbTimeoutError) return true;
    if (!(e instanceof MongoError)) continue;
    if (
      e instanceof MongoServerSelectionError ||
      e instanceof MongoNetworkError ||
      e instanceof MongoOperationTimeoutError ||
      e instanceof MongoTopologyClosedError ||
      e instanceof MongoNotConnectedError ||
      UNAVAILABLE_NAMES.has(e.name)
    ) {
      return true;
    }
    if (e instanceof MongoServerError && typeof e.code === 'number' && UNAVAILABLE_CODES.has(e.code)) return true;
  }
  return false;
}

/**
 * `p`, or a DbTimeoutError after `ms`. The call itself goes on (the driver
 * bounds it with its own timeouts); the caller just stops waiting for it.
 */
export function within<T>(p: Promise<T>, ms: number, what = 'database call'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new DbTimeoutError(what, ms)), ms);
  });
  // A late rejection of `p` after the timeout won must not be reported as unhandled.
  p.catch(() => {});
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
