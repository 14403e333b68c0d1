/**
 * `npm run server` (server/main.ts) with its embedded FerretDB, killed with
 * SIGKILL: no exit hook runs, and FerretDB must not outlive it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../server/db/ports.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

/** Running: exists and is not a zombie (an orphan's zombie waits for whoever reaps it). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

describe('npm run server killed with SIGKILL', function () {
  this.timeout(120_000);
  let dir: string;
  let ferretPid = 0;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-kill-'));
  });
  after(async () => {
    if (ferretPid && alive(ferretPid)) process.kill(ferretPid, 'SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('takes its embedded FerretDB with it within 2 s', async () => {
    const port = await freePort();
    const token = 'kill-test-admin-token-0123';
    // No MONGODB_URI: the server starts its own FerretDB in JIT_DATA_DIR/db.
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: REPO,
      env: { PATH: process.env.PATH!, HOME: process.env.HOME!, JIT_DATA_DIR: dir, JIT_ADMIN_TOKEN: token, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let status = 0;
    for (const until = Date.now() + 90_000; Date.now() < until && !status && child.exitCode === null; ) {
      status = await fetch(`http://127.0.0.1:${port}/api/v1/endpoints`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status, () => 0);
      if (!status) await sleep(200);
    }
    assert.equal(status, 200, out);
    ferretPid = Number((await readFile(path.join(dir, 'db', 'ferretdb.pid'), 'utf8')).trim());
    assert.ok(ferretPid > 0 && alive(ferretPid), 'FerretDB runs');

    child.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    while (alive(ferretPid) && Date.now() - killedAt < 2000) await sleep(20);
    const took = Date.now() - killedAt;
    assert.equal(alive(ferretPid), false, `FerretDB (pid ${ferretPid}) still runs ${took} ms after its server was killed`);
  });
});
