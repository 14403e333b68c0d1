/**
 * Folders only root can change, on the real file system of a temporary root: install refuses
 * what someone else owns or can write (before changing anything), tightens what it may keep,
 * and reads back what it made. Owners are set with chown (the tests run as root).
 */
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { enrollSpy, host, recorder, smallPayload } from '../../test/support/serviceHost.ts';
import { installAgent } from './install.ts';
import { nodeFiles } from './nodeFiles.ts';
import { makeSecureDir, unixTrustProblem, verifyTree } from './secureDir.ts';

const USER = 4321;

describe('service: folders only root can change (Linux, real file system)', () => {
  let dir: string;
  let stateFile: string;
  let runtime: string;
  let unit: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-secure-'));
    stateFile = path.join(dir, 'var', 'lib', 'jit-agent', 'state.json');
    runtime = path.join(dir, 'opt', 'jit-agent');
    unit = path.join(dir, 'etc', 'jit-agent.service');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** A host on the temporary root; the copy is a stand-in payload of two small real files. */
  async function tempHost(rec: ReturnType<typeof recorder>): Promise<ReturnType<typeof host>> {
    const src = path.join(dir, 'src');
    await mkdir(src, { recursive: true });
    await writeFile(path.join(src, 'node'), '#!/bin/false\n', { mode: 0o755 });
    await writeFile(path.join(src, 'main.js'), '');
    const payload = smallPayload('linux', path.join(src, 'node'), path.join(src, 'main.js'));
    return host('linux', { files: nodeFiles, run: rec.run, definitionPath: unit, installDir: runtime, payload: async () => payload });
  }

  async function install(): Promise<{ spy: ReturnType<typeof enrollSpy>; printed: string[] }> {
    const spy = enrollSpy();
    const h = await tempHost(recorder());
    await installAgent({ stateFile, serverUrl: 'https://jit.example', enroll: spy.enroll }, h);
    return { spy, printed: h.printed };
  }

  /** install must refuse with `message`, having run nothing, enrolled nothing and written nothing. */
  async function refuses(message: RegExp): Promise<void> {
    const spy = enrollSpy();
    const rec = recorder();
    const h = await tempHost(rec);
    const before = await listing(dir);
    await assert.rejects(installAgent({ stateFile, serverUrl: 'https://jit.example', enroll: spy.enroll }, h), (e: Error) => {
      assert.match(e.message, /^refusing to install/);
      assert.match(e.message, message);
      assert.match(e.message, /Nothing was changed/);
      return true;
    });
    assert.deepEqual([rec.log.filter((c) => c[0] !== '/usr/bin/env'), spy.calls], [[], []], 'no command, no enrollment');
    assert.deepEqual(await listing(dir), before, 'nothing created, removed or re-moded');
  }

  async function listing(root: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (p: string): Promise<void> => {
      const st = await stat(p).catch(() => null);
      out.push(`${path.relative(root, p)} ${st ? `${st.uid} ${(st.mode & 0o7777).toString(8)}` : 'dangling'}`);
      if (st?.isDirectory()) for (const n of (await readdir(p)).sort()) await walk(path.join(p, n));
    };
    await walk(root);
    return out;
  }

  it('refuses a state folder someone else owns (and the state file they planted in it)', async () => {
    await mkdir(path.dirname(stateFile), { recursive: true, mode: 0o700 });
    await writeFile(stateFile, '{"serverUrl":"https://attacker.example"}');
    await chown(path.dirname(stateFile), USER, USER);
    await refuses(new RegExp(`${path.dirname(stateFile)} is owned by uid ${USER}, not root`));
  });

  it('refuses a state file someone else can write, in a good folder', async () => {
    await mkdir(path.dirname(stateFile), { recursive: true, mode: 0o700 });
    await writeFile(stateFile, '{}');
    await chmod(stateFile, 0o666);
    await refuses(/state\.json is writable by its group \(mode 0666\)/);
  });

  it('refuses a runtime folder others can write, and a link in its place', async () => {
    await mkdir(runtime, { recursive: true });
    await chmod(runtime, 0o777);
    await refuses(/jit-agent is writable by its group \(mode 0777\)/);
    await rm(runtime, { recursive: true });
    await mkdir(path.join(dir, 'elsewhere'));
    await symlink(path.join(dir, 'elsewhere'), runtime);
    await refuses(/opt\/jit-agent is a symbolic link/);
  });

  it('refuses a leftover .new copy someone else owns', async () => {
    await mkdir(`${runtime}.new`, { recursive: true });
    await chown(`${runtime}.new`, USER, 0);
    await refuses(/jit-agent\.new is owned by uid 4321/);
  });

  it('refuses when a folder above can be written by others (no sticky bit), but not for a sticky one like /tmp', async () => {
    await mkdir(path.join(dir, 'var'), { mode: 0o777 });
    await chmod(path.join(dir, 'var'), 0o777);
    await refuses(new RegExp(`${path.join(dir, 'var')} is writable by its group \\(mode 0777\\) \\(a folder above`));
    await chmod(path.join(dir, 'var'), 0o1777);
    assert.equal(await unixTrustProblem(stateFile), null, 'sticky: nobody else can rename what root puts there');
  });

  it('keeps a root folder that is already there, tightened to 0700, and its enrollment', async () => {
    await mkdir(path.dirname(stateFile), { recursive: true, mode: 0o755 });
    await chmod(path.dirname(stateFile), 0o755);
    await writeFile(stateFile, '{}', { mode: 0o600 });
    const { spy, printed } = await install();
    assert.deepEqual(spy.calls, []);
    assert.match(printed.join('\n'), /already enrolled/);
    assert.equal((await stat(path.dirname(stateFile))).mode & 0o7777, 0o700);
    assert.equal((await stat(runtime)).mode & 0o7777, 0o755);
  });

  it('refuses a node whose shared libraries someone else can change, before changing anything', async () => {
    const libDir = path.join(dir, 'home', 'admin', 'lib');
    await mkdir(libDir, { recursive: true });
    await writeFile(path.join(libDir, 'libuv.so.1'), 'ELF');
    await chown(path.join(dir, 'home', 'admin'), USER, USER);
    const rec = recorder((argv) => (argv.includes('/usr/bin/ldd') ? { stdout: `\tlibuv.so.1 => ${libDir}/libuv.so.1 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n` } : undefined));
    const spy = enrollSpy();
    const h = await tempHost(rec);
    await assert.rejects(installAgent({ stateFile, serverUrl: 'https://jit.example', enroll: spy.enroll }, h), new RegExp(`${path.join(dir, 'home', 'admin')} is owned by uid ${USER}, not root \\(a folder above ${libDir}/libuv.so.1\\)[^]*Nothing of the service was installed`));
    assert.deepEqual(spy.calls, []);
    await assert.rejects(stat(path.dirname(stateFile)), { code: 'ENOENT' });
  });

  it('makeSecureDir creates every level root-owned with the right mode, and will not take a folder someone else made', async () => {
    const deep = path.join(dir, 'a', 'b', 'c');
    await makeSecureDir(deep, 0o700);
    for (const [p, mode] of [[path.join(dir, 'a'), 0o755], [path.join(dir, 'a', 'b'), 0o755], [deep, 0o700]] as const) {
      const st = await stat(p);
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [0, 0, mode], p);
    }
    const theirs = path.join(dir, 'theirs');
    await mkdir(theirs);
    await chown(theirs, USER, USER);
    await assert.rejects(makeSecureDir(theirs, 0o700), /owned by uid 4321: someone else created it/);
    await symlink(deep, path.join(dir, 'link'));
    await assert.rejects(makeSecureDir(path.join(dir, 'link'), 0o700), /not a folder \(a link or a file is in its place\)/);
  });

  it('verifyTree names a link, another owner and a group-writable file', async () => {
    const root = path.join(dir, 'tree');
    await makeSecureDir(root, 0o755);
    await writeFile(path.join(root, 'ok.js'), '');
    await writeFile(path.join(root, 'theirs.js'), '');
    await chown(path.join(root, 'theirs.js'), USER, 0);
    await writeFile(path.join(root, 'open.js'), '', { mode: 0o664 });
    await chmod(path.join(root, 'open.js'), 0o664);
    await symlink('/etc/passwd', path.join(root, 'link'));
    assert.deepEqual((await verifyTree(root)).map((p) => path.relative(root, p.split(' ')[0]!)), ['link', 'open.js', 'theirs.js']);
  });
});
