import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { RevokeJournal, type RevokeEntry } from './revokeJournal.ts';

const entry = (grantId: string): RevokeEntry => ({ v: 1, id: randomUUID(), kind: 'revoke', grantId, endpointId: 'e1', actor: 'admin', at: new Date().toISOString(), instructionId: randomUUID() });

describe('revoke journal (file)', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-journal-'));
    file = path.join(dir, 'journal', 'revokes.jsonl');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('keeps appended entries across a reopen, in order, in a 0600 file in a 0700 folder', async () => {
    const j = await RevokeJournal.open(file);
    const [a, b] = [entry('g1'), entry('g2')];
    await j.append(a);
    await j.append(b);
    const again = await RevokeJournal.open(file);
    assert.deepEqual(again.list(), [a, b]);
    assert.equal(again.pendingFor('g2'), again.list()[1]);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700);
  });

  it('drops a last line cut short by a crash, and later appends stay readable', async () => {
    const j = await RevokeJournal.open(file);
    const a = entry('g1');
    await j.append(a);
    await appendFile(file, JSON.stringify(entry('g2')).slice(0, 40));
    const again = await RevokeJournal.open(file);
    assert.deepEqual(again.list(), [a]);
    const c = entry('g3');
    await again.append(c);
    assert.deepEqual((await RevokeJournal.open(file)).list(), [a, c]);
  });

  it('cuts applied entries and keeps one appended meanwhile', async () => {
    const j = await RevokeJournal.open(file);
    const [a, b] = [entry('g1'), entry('g2')];
    await j.append(a);
    const applied = new Set(j.list().map((e) => e.id));
    await Promise.all([j.remove(applied), j.append(b)]);
    assert.deepEqual(j.list(), [b]);
    assert.deepEqual((await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l)), [b]);
  });
});
