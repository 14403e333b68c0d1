/**
 * The embedded database and the scheduler on it, for real: FerretDB processes on
 * throwaway folders and free ports, Agenda jobs that really run. No mocks.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readlink, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Agenda } from 'agenda';
import { MongoClient } from 'mongodb';
import { createAgenda, JobDeletedError, parseInterval } from './agenda.ts';
import { startFerretDB, type EmbeddedDb } from './ferret.ts';
import { freePort } from './ports.ts';

const POLL = 200; // Agenda processEvery in these tests, ms

/** Polls until `cond()` is true; fails with `what` after `ms`. */
async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Alive and not a zombie (an orphan's zombie waits for whoever reaps it; Linux /proc). */
function running(pid: number): boolean {
  if (!alive(pid)) return false;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** Pids of ferretdb processes whose working directory is `dir` (Linux /proc; [] elsewhere). */
async function ferretdbsIn(dir: string): Promise<number[]> {
  if (process.platform !== 'linux') return [];
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cwd = await readlink(`/proc/${name}/cwd`).catch(() => '');
    const exe = await readlink(`/proc/${name}/exe`).catch(() => '');
    if (cwd === dir && path.basename(exe).startsWith('ferretdb')) found.push(Number(name));
  }
  return found;
}

/** Runs an ES module snippet in a child Node (with tsx) and resolves with its stdout lines as they come. */
function nodeChild(code: string): { lines: string[]; exited: Promise<number | null>; pid: number } {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { lines, exited, pid: child.pid! };
}

const FERRET_TS = path.resolve(import.meta.dirname, 'ferret.ts');

describe('embedded FerretDB and Agenda on it', function () {
  this.timeout(60_000);

  let tmp: string;
  let db: EmbeddedDb;
  let client: MongoClient;
  const agendas: Agenda[] = [];
  const extraDbs: EmbeddedDb[] = [];
  const extraClients: MongoClient[] = [];
  let dbCounter = 0;
  const freshDb = () => client.db(`t${process.pid}_${dbCounter++}`);

  function agendaOn(database: ReturnType<MongoClient['db']>): Agenda {
    const a = createAgenda(database, { processEvery: POLL, name: 'test' });
    agendas.push(a);
    return a;
  }

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'jit-ferret-test-'));
    db = await startFerretDB({ dataDir: path.join(tmp, 'main') });
    client = await MongoClient.connect(db.uri);
  });

  afterEach(async () => {
    for (const a of agendas.splice(0)) await a.stop();
    for (const c of extraClients.splice(0)) await c.close();
    for (const d of extraDbs.splice(0)) await d.stop();
  });

  after(async () => {
    await client?.close();
    await db?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('answers on a loopback port: insert then find', async () => {
    assert.match(db.uri, /^mongodb:\/\/127\.0\.0\.1:\d+\/$/);
    const c = freshDb().collection<{ _id: string; n: number; at: Date }>('things');
    const at = new Date();
    await c.insertOne({ _id: 'a', n: 1, at });
    await c.insertMany([
      { _id: 'b', n: 2, at },
      { _id: 'c', n: 3, at },
    ]);
    assert.deepEqual(await c.findOne({ _id: 'a' }), { _id: 'a', n: 1, at });
    assert.deepEqual((await c.find({ n: { $gte: 2 } }).sort({ n: 1 }).toArray()).map((d) => d._id), ['b', 'c']);
  });

  it('finds, updates and deletes by _id through the _id index (our patch of FerretDB)', async () => {
    const c = freshDb().collection<{ _id: string; n: number }>('indexed');
    await c.insertMany(Array.from({ length: 50 }, (_, n) => ({ _id: `d${n}`, n })));
    const plan = (await c.find({ _id: 'd7' }).explain()) as { queryPlanner: { Plan: string[] } };
    // Released 1.24.2 says "SCAN <table>" here: its lookups and its index are written differently.
    assert.match(plan.queryPlanner.Plan.join('\n'), /SEARCH \S+ USING INDEX \S+__id_/);
    // Updates and deletes use the same lookup expression; check they still hit the right document.
    assert.equal((await c.updateOne({ _id: 'd7' }, { $set: { n: 70 } })).modifiedCount, 1);
    assert.equal((await c.findOne({ _id: 'd7' }))?.n, 70);
    assert.equal((await c.deleteOne({ _id: 'd8' })).deletedCount, 1);
    assert.equal(await c.countDocuments(), 49);
  });

  it('runs an Agenda job scheduled 1.5 s ahead once, on time', async () => {
    const agenda = agendaOn(freshDb());
    const runs: number[] = [];
    agenda.define('tick', async () => {
      runs.push(Date.now());
    });
    await agenda.start();
    const due = Date.now() + 1500;
    await agenda.schedule(new Date(due), 'tick', {});
    await waitFor('the job to run', () => runs.length > 0, 6000);
    await sleep(4 * POLL); // would a second run come?
    assert.equal(runs.length, 1);
    const late = runs[0]! - due;
    assert.ok(late >= 0 && late < POLL + 500, `ran ${late} ms after its time`);
  });

  it('keeps a scheduled job across an Agenda stop and a new Agenda (a server restart)', async () => {
    const database = freshDb();
    const first = agendaOn(database);
    let firstRuns = 0;
    first.define('later', async () => {
      firstRuns++;
    });
    await first.start();
    const due = Date.now() + 2000;
    await first.schedule(new Date(due), 'later', { grantId: 'g1' });
    await sleep(3 * POLL); // let the first instance poll (and lock the job, it is due within processEvery soon)
    await first.stop();

    const second = agendaOn(database);
    const seen: unknown[] = [];
    second.define('later', async (job) => {
      seen.push(job.attrs.data);
    });
    await second.start();
    await waitFor('the job to run on the new instance', () => seen.length > 0, 8000);
    await sleep(4 * POLL);
    assert.equal(firstRuns, 0);
    assert.deepEqual(seen, [{ grantId: 'g1' }]);
  });

  it('keeps a pending job across a FerretDB stop and restart on the same folder', async () => {
    const dataDir = path.join(tmp, 'restart');
    const d1 = await startFerretDB({ dataDir });
    extraDbs.push(d1);
    const c1 = await MongoClient.connect(d1.uri);
    const a1 = createAgenda(c1.db('jobs'), { processEvery: POLL });
    a1.define('after-restart', async () => {});
    await a1.start();
    const due = Date.now() + 2500;
    await a1.schedule(new Date(due), 'after-restart', { n: 7 });
    await a1.stop();
    await c1.close();
    await d1.stop();
    assert.equal(alive(d1.pid), false);

    // Same folder, same port: what a restarted server does.
    const d2 = await startFerretDB({ dataDir, port: d1.port });
    extraDbs.push(d2);
    const c2 = await MongoClient.connect(d2.uri);
    extraClients.push(c2);
    const a2 = agendaOn(c2.db('jobs'));
    const runs: { at: number; data: unknown }[] = [];
    a2.define('after-restart', async (job) => {
      runs.push({ at: Date.now(), data: job.attrs.data });
    });
    await a2.start();
    await waitFor('the job to run after the database restart', () => runs.length > 0, 8000);
    await sleep(4 * POLL);
    assert.equal(runs.length, 1);
    assert.deepEqual(runs[0]!.data, { n: 7 });
    assert.ok(runs[0]!.at >= due, 'not before its time');
  });

  it('runs each of many due jobs exactly once although FerretDB findAndModify is not atomic', async () => {
    // Without createAgenda's write queue this ran some jobs twice: Agenda starts a new
    // scan every processEvery while the last one may still be locking jobs.
    const database = freshDb();
    const n = 40;
    const past = new Date(Date.now() - 1000);
    await database.collection('agendaJobs').insertMany(
      Array.from({ length: n }, (_, i) => ({ name: 'burst', data: { i }, type: 'normal', priority: 0, nextRunAt: past, lockedAt: null })),
    );
    const agenda = createAgenda(database, { processEvery: 50 });
    agendas.push(agenda);
    const count = new Map<number, number>();
    agenda.define('burst', async (job) => {
      const i = (job.attrs.data as { i: number }).i;
      count.set(i, (count.get(i) ?? 0) + 1);
    });
    await agenda.start();
    await waitFor('all jobs to run', () => count.size === n, 30_000);
    await sleep(500);
    assert.deepEqual([...count.values()].filter((c) => c !== 1), []);
  });

  it('tells a job deleted while queued to run from any other failure to save its state', async () => {
    const database = freshDb();
    const agenda = agendaOn(database);
    agenda.define('kept', async () => {});
    await agenda.start();
    const job = await agenda.schedule(new Date(Date.now() + 3_600_000), 'kept', { grantId: 'g' });
    // Still stored, but the save matches nothing (another name): a real failure, kept as it was.
    await assert.rejects(agenda.db.saveJobState({ ...job.attrs, name: 'renamed' }, {}), (err: Error) => !(err instanceof JobDeletedError) && /cannot be updated/.test(err.message));
    await agenda.cancel({ data: { grantId: 'g' } });
    await assert.rejects(agenda.db.saveJobState(job.attrs, {}), (err: Error) => err instanceof JobDeletedError && /was deleted while queued to run/.test(err.message));
  });

  it('stop() leaves no ferretdb process behind', async () => {
    const dataDir = path.join(tmp, 'stop');
    const d = await startFerretDB({ dataDir });
    const real = d.dataDir;
    assert.ok(alive(d.pid));
    if (process.platform === 'linux') assert.deepEqual(await ferretdbsIn(real), [d.pid]);
    await d.stop();
    assert.equal(alive(d.pid), false);
    assert.deepEqual(await ferretdbsIn(real), []);
    await d.stop(); // idempotent
  });

  it('ends FerretDB when its parent process exits without calling stop()', async () => {
    const dataDir = path.join(tmp, 'parent-exit');
    const child = nodeChild(`
      import { startFerretDB } from ${JSON.stringify(FERRET_TS)};
      const d = await startFerretDB({ dataDir: ${JSON.stringify(dataDir)} });
      console.log(d.pid);
      process.exit(0);
    `);
    assert.equal(await child.exited, 0);
    const pid = Number(child.lines[0]);
    assert.ok(pid > 0, `child printed ${child.lines.join('|')}`);
    await waitFor('ferretdb to be gone', () => !alive(pid), 3000);
  });

  it('ends FerretDB within 2 s when its parent is SIGKILLed (parent-death signal)', async function () {
    if (process.platform !== 'linux') this.skip();
    const dataDir = path.join(tmp, 'parent-killed');
    const child = nodeChild(`
      import { startFerretDB } from ${JSON.stringify(FERRET_TS)};
      const d = await startFerretDB({ dataDir: ${JSON.stringify(dataDir)} });
      console.log(d.pid);
      setInterval(() => {}, 1000);
    `);
    await waitFor('the child to report its FerretDB', () => child.lines.length > 0, 20_000);
    const pid = Number(child.lines[0]);
    assert.ok(running(pid));
    // Started through setpriv, which execs it: the pid is FerretDB's own, with its own name.
    assert.equal(path.basename(await readlink(`/proc/${pid}/exe`)), 'ferretdb');
    process.kill(child.pid, 'SIGKILL'); // no 'exit' hooks run
    await child.exited;
    await waitFor('ferretdb to be gone', () => !running(pid), 2000);
  });

  it('ends an orphaned FerretDB (its parent was SIGKILLed) when starting again on the same folder', async function () {
    if (process.platform !== 'linux') this.skip();
    const dataDir = path.join(tmp, 'orphan');
    // Without the parent-death signal: what a platform without it, or a FerretDB of an older version, leaves.
    const child = nodeChild(`
      import { startFerretDB } from ${JSON.stringify(FERRET_TS)};
      const d = await startFerretDB({ dataDir: ${JSON.stringify(dataDir)}, dieWithParent: false });
      console.log(d.pid);
      setInterval(() => {}, 1000);
    `);
    await waitFor('the child to report its FerretDB', () => child.lines.length > 0, 20_000);
    const orphan = Number(child.lines[0]);
    process.kill(child.pid, 'SIGKILL'); // no 'exit' hooks run
    await child.exited;
    assert.ok(alive(orphan), 'the orphan should still be running (this is what the pid file is for)');

    const d = await startFerretDB({ dataDir });
    extraDbs.push(d);
    await waitFor('the orphan to be ended', () => !alive(orphan), 5000);
    assert.deepEqual(await ferretdbsIn(d.dataDir), [d.pid]);
  });

  it('reports a clear error when the port it was given is taken', async () => {
    const port = await freePort();
    const dataDir = path.join(tmp, 'busy');
    const blocker = await startFerretDB({ dataDir: path.join(tmp, 'blocker'), port });
    extraDbs.push(blocker);
    await assert.rejects(startFerretDB({ dataDir, port, startTimeoutMs: 10_000 }), (err: Error) => {
      assert.match(err.message, /exited with 1 while starting on 127\.0\.0\.1:\d+/);
      assert.match(err.message, /address already in use/);
      return true;
    });
    // FerretDB runs with cwd = realpath(dataDir); the tmp folder may sit behind a symlink.
    assert.deepEqual(await ferretdbsIn(await realpath(dataDir)), []);
  });

  it('reads processEvery strictly (Agenda itself reads "200 ms" as 5 s)', () => {
    assert.equal(parseInterval(200), 200);
    assert.equal(parseInterval('200 ms'), 200);
    assert.equal(parseInterval('200ms'), 200);
    assert.equal(parseInterval('1 second'), 1000);
    assert.equal(parseInterval('1.5 seconds'), 1500);
    assert.equal(parseInterval('5 minutes'), 300_000);
    assert.equal(parseInterval('750'), 750);
    for (const bad of ['soon', '', '0', '-1 s', 'half a second', '1 fortnight']) {
      assert.throws(() => parseInterval(bad), /invalid scheduler interval/, bad);
    }
  });
});
