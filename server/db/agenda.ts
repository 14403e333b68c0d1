/**
 * Agenda (job scheduler) on our database, working the same on MongoDB and on the
 * embedded FerretDB 1.24 / SQLite. What FerretDB needed was found by experiment
 * (see server/db/ferret.test.ts); each setting below says why it is there.
 */
import { Agenda, type JobRepository } from 'agenda';
import { MongoBackend } from '@agendajs/mongo-backend';
import { ObjectId, type Db } from 'mongodb';
import type { Logger } from 'pino';
import { SerialQueues } from './serialQueues.ts';

/** Where Agenda keeps the jobs. */
export const JOBS_COLLECTION = 'agendaJobs';

export interface AgendaOptions {
  /** How often Agenda polls for due jobs: milliseconds, or e.g. "200 ms", "1 second", "5 minutes". */
  processEvery: string | number;
  /** Stored as lastModifiedBy on the jobs this instance locks (debugging aid). */
  name?: string;
}

export function createAgenda(db: Db, opts: AgendaOptions): Agenda {
  const backend = new MongoBackend({
    mongo: db,
    collection: JOBS_COLLECTION,
    // ensureIndex: kept on. FerretDB's SQLite backend creates the compound
    // findAndLockNextJobIndex fine, and re-creating it on every start (same name, same keys)
    // is a no-op there as on MongoDB. (It would fail, on both, if someone changed `sort`
    // below: the index is named after the lock query and its keys include the sort keys.)
    ensureIndex: true,
    // sort: the default, spelled out because the index above is built from it. FerretDB
    // honours findAndModify's sort (it sorts in memory after the SQLite query).
    sort: { nextRunAt: 'asc', priority: 'desc' },
  });
  reportDeletedJobs(backend.repository, db);
  serializeWrites(backend.repository);
  reportConnectFailure(backend, () => agenda);

  const agenda: Agenda = new Agenda({
    backend,
    ...(opts.name ? { name: opts.name } : {}),
    processEvery: parseInterval(opts.processEvery),
    // A single worker process running a few jobs at a time: the grant jobs are short
    // database updates plus a message to an agent.
    maxConcurrency: 4,
    defaultConcurrency: 4,
  });
  return agenda;
}

/**
 * Why: FerretDB runs findAndModify as "query, then write the whole document back by _id",
 * with nothing in between that re-checks the filter, so it is not atomic. Agenda locks a
 * job with findOneAndUpdate({lockedAt: null, nextRunAt <= …}, {$set: {lockedAt}}) and
 * relies on only one caller winning. Measured on FerretDB 1.24.2: 4 concurrent lock calls
 * on one due job gave more than one winner in 29 of 30 trials; and Agenda does issue them
 * concurrently from one process, since it starts a scan every processEvery whether or not
 * the previous one finished: 50 due jobs with processEvery 200 ms ran 68 times (18 twice).
 * unique()/insertOnly upserts (how we schedule grant jobs) have the same read-then-write
 * race and could insert a job twice.
 *
 * So every repository call that writes goes through one queue per Agenda instance: in
 * this process they then run one at a time, each seeing the previous one's result, which
 * makes them as good as atomic. It also keeps Agenda from stacking concurrent SQLite write
 * transactions (which FerretDB answers with "database is locked (5) (SQLITE_BUSY)" under
 * load). Cost on MongoDB: job bookkeeping writes of one process are serialised, a few ms
 * each. What it cannot fix: two processes running Agenda on the same FerretDB database;
 * run a single scheduler process per database (MongoDB itself is fine with several).
 */
function serializeWrites(repo: JobRepository): void {
  const queue = new SerialQueues();
  const queued =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> =>
      queue.run('writes', () => fn(...args));
  repo.getNextJobToRun = queued(repo.getNextJobToRun.bind(repo));
  repo.lockJob = queued(repo.lockJob.bind(repo));
  repo.unlockJob = queued(repo.unlockJob.bind(repo));
  repo.unlockJobs = queued(repo.unlockJobs.bind(repo));
  repo.saveJob = queued(repo.saveJob.bind(repo));
  repo.saveJobState = queued(repo.saveJobState.bind(repo));
  repo.removeJobs = queued(repo.removeJobs.bind(repo));
  repo.disableJobs = queued(repo.disableJobs.bind(repo));
  repo.enableJobs = queued(repo.enableJobs.bind(repo));
  repo.purgeAllJobs = queued(repo.purgeAllJobs.bind(repo));
}

/**
 * A job whose document was deleted while Agenda held it locked, queued to run
 * (our cleanup of a finished grant's jobs; see commands/transition.ts). Agenda
 * finds out when it saves the job's state before running it: the save matches
 * nothing, the job does not run (right: it was cancelled), and Agenda emits its
 * error as an 'error' event. `schedulerErrorLogger` logs it at debug level.
 */
export class JobDeletedError extends Error {
  constructor(
    readonly job: { _id?: unknown; name?: string; data?: unknown },
    cause: unknown,
  ) {
    super(`job ${String(job._id)} (${job.name}) was deleted while queued to run`, { cause });
  }
}

/**
 * Why: after an outage many jobs come due at once, Agenda locks them and queues
 * them locally, and the reports that arrive meanwhile finish grants whose jobs we
 * then delete; each such job then failed "cannot be updated in the database, maybe
 * it does not exist anymore?" and was logged as a scheduler error. Here a failed
 * state save is told apart by looking the job up (by `_id`): only a job whose
 * document is really gone becomes a JobDeletedError; any other failure (database
 * down, the lookup itself failing) stays the error it was.
 */
function reportDeletedJobs(repo: JobRepository, db: Db): void {
  const save = repo.saveJobState.bind(repo);
  const jobs = db.collection(JOBS_COLLECTION);
  repo.saveJobState = async (job, options) => {
    try {
      await save(job, options);
    } catch (err) {
      const id = job._id === undefined ? null : ObjectId.isValid(String(job._id)) ? new ObjectId(String(job._id)) : null;
      const gone = id !== null && (await jobs.findOne({ _id: id }, { projection: { _id: 1 } }).then((d) => d === null, () => false));
      throw gone ? new JobDeletedError(job, err) : err;
    }
  };
}

/** Agenda's 'error' events for the log: a deleted job's at debug level with the reason, anything else as an error. */
export function schedulerErrorLogger(log: Logger): (err: unknown) => void {
  return (err) => {
    if (err instanceof JobDeletedError) {
      const data = err.job.data as { grantId?: string } | undefined;
      log.debug({ job: err.job.name, jobId: String(err.job._id), grantId: data?.grantId, reason: 'its grant finished and its jobs were deleted' }, err.message);
    } else log.error({ err }, 'scheduler error');
  };
}

/**
 * Why: Agenda's constructor calls backend.connect() and only listens for success
 * (`connect().then(emit 'ready')`). If creating the index fails (database down, or an
 * existing index of that name with other keys) the rejection is unhandled, which ends a
 * Node 20 process, and start() would wait forever for 'ready'. Instead we report it as an
 * Agenda 'error' event and carry on: the collection is usable without the index, and a
 * database that is really down shows up in the next operations' errors.
 */
function reportConnectFailure(backend: MongoBackend, agenda: () => Agenda): void {
  const connect = backend.connect.bind(backend);
  backend.connect = async () => {
    try {
      await connect();
    } catch (err) {
      const error = new Error(`agenda: preparing the jobs collection failed: ${(err as Error).message}`, { cause: err });
      setImmediate(() => agenda().emit('error', error));
    }
  };
}

const UNITS: Record<string, number> = {
  ms: 1, msec: 1, msecs: 1, millisecond: 1, milliseconds: 1,
  s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hour: 3_600_000, hours: 3_600_000,
};

/**
 * processEvery in milliseconds. Why not hand the string to Agenda: it parses it with
 * human-interval, which returns NaN for "200 ms" or "1s" and 200000 for "200 milliseconds",
 * and Agenda silently falls back to 5 seconds on NaN. A wrong poll interval shows up only
 * as jobs running late, so a value we cannot read is an error here.
 */
export function parseInterval(value: string | number): number {
  let ms: number | undefined;
  if (typeof value === 'number') ms = value;
  else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(value);
    const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
    if (m && unit !== undefined) ms = Number(m[1]) * unit;
    else if (/^\s*\d+\s*$/.test(value)) ms = Number(value);
  }
  if (ms === undefined || !Number.isFinite(ms) || ms < 1) {
    throw new Error(`invalid scheduler interval ${JSON.stringify(value)}: use milliseconds or e.g. "200 ms", "1 second", "5 minutes"`);
  }
  return Math.round(ms);
}
