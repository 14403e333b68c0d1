import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startFerretDB, type EmbeddedDb } from '../../server/db/ferret.ts';
import { freePort } from '../../server/db/ports.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

/** `npm run server` (server/main.ts) as a real process: its configuration errors and its lifecycle. */
describe('npm run server', function () {
  this.timeout(120_000);
  let dir: string;
  let db: EmbeddedDb;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-main-'));
    db = await startFerretDB({ dataDir: path.join(dir, 'db') });
  });
  after(async () => {
    await db?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function server(env: Record<string, string>) {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: REPO,
      env: { PATH: process.env.PATH!, HOME: process.env.HOME!, JIT_DATA_DIR: dir, MONGODB_URI: `${db.uri}jitmain`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    return { child, exited, output: () => out };
  }

  it('refuses a missing admin token, naming the setting, and exits 1', async () => {
    const s = server({});
    assert.equal(await s.exited, 1);
    assert.match(s.output(), /adminToken/);
  });

  it('serves on the configured port and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const token = 'main-test-admin-token-0123';
    const s = server({ JIT_ADMIN_TOKEN: token, PORT: String(port) });
    const url = `http://127.0.0.1:${port}`;
    let status = 0;
    for (const until = Date.now() + 60_000; Date.now() < until && !status; ) {
      status = await fetch(`${url}/api/v1/endpoints`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status, () => 0);
      if (!status) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(status, 200, s.output());
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0, s.output());
  });
});
