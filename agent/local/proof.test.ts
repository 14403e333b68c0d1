import assert from 'node:assert/strict';
import { chown, link, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ProofFolder } from './proof.ts';

const asRoot = process.platform !== 'win32' && process.getuid?.() === 0;

(asRoot ? describe : describe.skip)('local channel: who is asking, by the owner of a proof file', () => {
  let dir: string;
  let proof: ProofFolder;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-proof-'));
    proof = new ProofFolder(path.join(dir, 'proof'));
    await proof.prepare();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('makes the folder sticky, writable and not listable by others (1733), emptied at each start', async () => {
    await writeFile(path.join(proof.dir, 'left-over'), '');
    await proof.prepare();
    const st = await stat(proof.dir);
    assert.equal(st.mode & 0o7777, 0o1733);
    assert.equal(st.uid, 0);
    assert.equal((await stat(path.join(proof.dir, 'left-over')).catch(() => null)), null);
  });

  it('names the uid that owns a plain file named by the challenge, and removes it', async () => {
    const c = proof.challenge();
    assert.match(c, /^[0-9a-f]{64}$/);
    assert.notEqual(c, proof.challenge(), 'a fresh one each time');
    await writeFile(path.join(proof.dir, c), '');
    await chown(path.join(proof.dir, c), 2_097_123, 2_097_123);
    assert.equal(await proof.ownerOf(c), 2_097_123);
    assert.equal(await proof.ownerOf(c), null, 'used up');
  });

  it('refuses a missing file, a malformed challenge, a symbolic link, a second hard link and a folder', async () => {
    assert.equal(await proof.ownerOf(proof.challenge()), null, 'no file');
    assert.equal(await proof.ownerOf('../../etc/passwd'), null, 'not a challenge');
    const target = path.join(dir, 'someone-elses');
    await writeFile(target, '');
    await chown(target, 2_097_124, 2_097_124);
    const viaSymlink = proof.challenge();
    await symlink(target, path.join(proof.dir, viaSymlink));
    assert.equal(await proof.ownerOf(viaSymlink), null, 'symbolic link');
    const viaLink = proof.challenge();
    await link(target, path.join(proof.dir, viaLink));
    assert.equal(await proof.ownerOf(viaLink), null, 'hard link to another file');
    const folder = proof.challenge();
    await mkdir(path.join(proof.dir, folder));
    assert.equal(await proof.ownerOf(folder), null, 'a folder');
    assert.ok(await stat(target), 'the linked file itself is untouched');
  });
});
