/**
 * uninstall: every managed account goes through the one removal sequence (disable → logoff →
 * delete → purge) while the service still runs, then the service, then the marker group and the
 * state. On real (sandboxed) Linux accounts, and through a logging fake backend.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AccountError } from '../os/backend.ts';
import { run as realRun, type Runner } from '../os/exec.ts';
import { LinuxBackend } from '../os/linux.ts';
import { makeSandboxRoot } from '../os/sandboxRoot.ts';
import { loadOrCreateKey } from '../localKey.ts';
import { StateStore } from '../state.ts';
import { Plan } from '../../protocol/messages.ts';
import { enrollSpy, fakeBackend, host, memoryFiles, recorder } from '../../test/support/serviceHost.ts';
import { NotPrivilegedError } from './host.ts';
import { installAgent } from './install.ts';
import { nodeFiles } from './nodeFiles.ts';
import { uninstallAgent } from './uninstall.ts';

const UNIT = '/etc/systemd/system/jit-agent.service';
const STATE = '/var/lib/jit-agent/state.json';

describe('service: uninstall', () => {
  it('removes each account disable → logoff → delete → purge, then the service, then the marker group', async () => {
    const files = memoryFiles({ [STATE]: '{}', [UNIT]: 'x' });
    const log: string[][] = [];
    const rec = recorder(undefined, log);
    const fake = fakeBackend(['jt1', 'jt2'], log);
    const h = host('linux', { files, run: rec.run, backend: async () => fake.backend });
    await uninstallAgent({}, h);
    assert.deepEqual(log.map((c) => c.join(' ')), [
      'disable jt1', 'logoff jt1', 'delete jt1', 'purge jt1 5000',
      'disable jt2', 'logoff jt2', 'delete jt2', 'purge jt2 5001',
      '/usr/bin/systemctl disable --now jit-agent',
      '/usr/bin/systemctl daemon-reload',
      'dropMarker',
    ]);
    assert.equal(files.files.has(UNIT) || files.files.has(STATE), false);
    const out = h.printed.join('\n');
    assert.match(out, /remove managed account jt1 \(uid 5000\): disable, log off, delete, purge/);
    assert.match(out, /jt1: disabled[^]*jt1: 1 process\(es\) ended[^]*jt1: account and home deleted[^]*jt1: what it left behind is gone/);
    assert.match(out, /remove the jit-managed marker group/);
  });

  it('a failing delete leaves the account disabled and the service in place, and names the account', async () => {
    const files = memoryFiles({ [STATE]: '{}', [UNIT]: 'x' });
    const log: string[][] = [];
    const rec = recorder(undefined, log);
    const fake = fakeBackend(['jta', 'jtb'], log, 'jta');
    const h = host('linux', { files, run: rec.run, backend: async () => fake.backend });
    await assert.rejects(uninstallAgent({}, h), /could not remove 1 managed account\(s\)[^]*jta: jta is still logged in/);
    assert.deepEqual(log.map((c) => c.join(' ')), [
      'disable jta', 'logoff jta', 'delete jta',
      'disable jtb', 'logoff jtb', 'delete jtb', 'purge jtb 5001',
    ]);
    assert.equal(fake.accounts.get('jta')?.enabled, false, 'jta is left disabled');
    assert.deepEqual([...fake.accounts.keys()], ['jta'], 'the other account was still removed');
    assert.ok(files.files.has(UNIT) && files.files.has(STATE), 'service and state left as they were');
  });

  it('the command exits 1 and names the account when one cannot be removed', async () => {
    // main.ts turns the rejection into "jit-agent: <message>" and exit code 1; checked here on the message.
    const fake = fakeBackend(['jtx'], [], 'jtx');
    const h = host('linux', { files: memoryFiles({ [UNIT]: 'x' }), backend: async () => fake.backend });
    const err = await uninstallAgent({}, h).then(() => null, (e: Error) => e);
    assert.ok(err && /jtx/.test(err.message) && /left as it is/.test(err.message), String(err));
  });

  it('catches an account created between the first pass and the stop', async () => {
    const files = memoryFiles({ [UNIT]: 'x' });
    const log: string[][] = [];
    const fake = fakeBackend(['jt1'], log);
    const rec = recorder((argv) => {
      // The agent creates one more account just before systemctl stops it.
      if (argv[1] === 'disable') fake.accounts.set('jtlate', { name: 'jtlate', id: '5009', enabled: false, managed: true, groups: [] });
      return undefined;
    }, log);
    await uninstallAgent({}, host('linux', { files, run: rec.run, backend: async () => fake.backend }));
    assert.deepEqual([...fake.accounts.keys()], []);
    const order = log.map((c) => c.join(' '));
    assert.deepEqual(order.slice(order.indexOf('/usr/bin/systemctl daemon-reload') + 1), ['disable jtlate', 'logoff jtlate', 'delete jtlate', 'purge jtlate 5009', 'dropMarker']);
  });

  it('tolerates an account the running agent deletes at the same moment', async () => {
    const log: string[][] = [];
    const fake = fakeBackend(['jtr'], log);
    // The agent deletes it between our disable and our logoff: logoff then says NOT_FOUND.
    const disable = fake.backend.disable.bind(fake.backend);
    fake.backend.disable = async (n) => {
      await disable(n);
      fake.accounts.delete(n);
    };
    const lookup = fake.backend.lookup.bind(fake.backend);
    let lookups = 0;
    fake.backend.lookup = async (n) => (++lookups === 2 ? { name: n, id: '5000', enabled: false, managed: true, groups: [] } : lookup(n));
    await uninstallAgent({}, host('linux', { files: memoryFiles({ [UNIT]: 'x' }), backend: async () => fake.backend }));
    assert.ok(log.some((c) => c.join(' ') === 'purge jtr 5000'), log.join('\n'));
  });

  it('removes the runtime folder with the service', async () => {
    const files = memoryFiles({ [UNIT]: 'x', '/opt/jit-agent/bin/node': 'ELF' });
    files.dirs.set('/opt/jit-agent', 0o700);
    await uninstallAgent({}, host('linux', { files }));
    assert.equal(files.files.has('/opt/jit-agent/bin/node') || files.dirs.has('/opt/jit-agent'), false);
  });

  it('--dry-run prints every step and changes nothing', async () => {
    const files = memoryFiles({ [STATE]: '{}', [UNIT]: 'x' });
    const log: string[][] = [];
    const rec = recorder(undefined, log);
    const fake = fakeBackend(['jt1', 'jt2'], log);
    const h = host('linux', { files, run: rec.run, backend: async () => fake.backend });
    await uninstallAgent({ dryRun: true }, h);
    assert.deepEqual([log, [...fake.accounts.keys()], files.files.size], [[], ['jt1', 'jt2'], 2]);
    const out = h.printed.join('\n');
    for (const step of [
      /uninstall: \[dry run\] would remove managed account jt1 \(uid 5000\): disable, log off, delete, purge/,
      /uninstall: \[dry run\] would \$ \/usr\/bin\/systemctl disable --now jit-agent/,
      /uninstall: \[dry run\] would remove the jit-managed marker group/,
      /uninstall: \[dry run\] would delete \/var\/lib\/jit-agent\/state\.json\.key/,
    ]) assert.match(out, step);
  });

  it('refuses without root or Administrator, before doing anything', async () => {
    for (const platform of ['linux', 'darwin', 'win32'] as const) {
      const files = memoryFiles();
      const rec = recorder();
      const spy = enrollSpy();
      const fake = fakeBackend(['jt1']);
      const h = host(platform, { files, run: rec.run, isPrivileged: async () => false, backend: async () => fake.backend });
      const message = platform === 'win32' ? /must run as Administrator/ : /must run as root/;
      await assert.rejects(installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, h), (e: Error) => e instanceof NotPrivilegedError && message.test(e.message));
      await assert.rejects(uninstallAgent({}, h), NotPrivilegedError);
      assert.deepEqual([rec.log, spy.calls, h.printed, fake.listed(), files.files.size, files.dirs.size], [[], [], [], 0, 0, 0], platform);
    }
  });

  it('refuses to go on when the accounts cannot be listed (no backend for this OS)', async () => {
    const rec = recorder();
    const h = host('win32', {
      run: rec.run,
      backend: () => {
        throw new AccountError('COMMAND_FAILED', 'no account backend for win32 yet');
      },
    });
    await assert.rejects(uninstallAgent({}, h), /no account backend for win32 yet[^]*nothing was changed, the service keeps running/);
    assert.deepEqual(rec.log, []);
  });
});

describe('service: uninstall on real sandboxed Linux accounts', () => {
  let sandbox: { root: string; cleanup(): Promise<void> };
  let dir: string;
  beforeEach(async () => {
    sandbox = await makeSandboxRoot();
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-uninstall-'));
  });
  afterEach(async () => {
    await sandbox.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('disables, logs off, deletes and purges every managed account before stopping the service, then removes unit, state and key', async () => {
    const log: string[][] = [];
    // Backend commands run for real on the sandbox and are logged in the same list as the service commands.
    const recordingRealRun: Runner = (file, argv, opts) => {
      log.push([file, ...argv]);
      return realRun(file, argv, opts);
    };
    const backend = new LinuxBackend({ root: sandbox.root, run: recordingRealRun });
    const expiresAt = new Date(Date.now() + 3_600_000);
    await backend.createDisabled({ name: 'jtuninst1', group: 'Administrators', grantId: 'g1', expiresAt }, 'Pw-1-very-secret');
    await backend.createDisabled({ name: 'jtuninst2', group: 'Users', grantId: 'g2', expiresAt }, 'Pw-2-very-secret');
    await backend.enable('jtuninst1', expiresAt);
    assert.equal((await backend.listManaged()).length, 2);
    log.length = 0;

    const stateFile = path.join(dir, 'state', 'state.json');
    await StateStore.create(stateFile, {
      version: 1, serverUrl: 'http://127.0.0.1:9', endpointId: 'e1', credential: 'c', hostname: 'h',
      sandboxRoot: sandbox.root, grants: {}, seenInstructions: [], outbox: [],
    });
    await loadOrCreateKey(stateFile);
    const unitPath = path.join(dir, 'jit-agent.service');
    await writeFile(unitPath, '[Service]\n');
    const jitCommand = path.join(dir, 'jit');
    await writeFile(jitCommand, '#!/bin/sh\n', { mode: 0o755 });

    const rec = recorder(undefined, log);
    const roots: (string | undefined)[] = [];
    const h = host('linux', {
      files: nodeFiles,
      run: rec.run,
      definitionPath: unitPath,
      installDir: path.join(dir, 'opt-jit-agent'),
      commandPath: jitCommand,
      backend: async (root) => (roots.push(root), backend),
    });
    await uninstallAgent({ stateFile }, h);

    assert.deepEqual(roots, [sandbox.root], 'the backend works on the state file\'s sandbox root');
    const passwd = await readFile(path.join(sandbox.root, 'etc', 'passwd'), 'utf8');
    assert.doesNotMatch(passwd, /jtuninst/);
    assert.doesNotMatch(await readFile(path.join(sandbox.root, 'etc', 'group'), 'utf8'), /^jit-managed:/m, 'marker group dropped');
    assert.deepEqual(await backend.listManaged(), []);

    const names = log.map((c) => c.join(' '));
    const first = (re: RegExp) => names.findIndex((c) => re.test(c));
    const lock = first(/^usermod .*-L.* -- jtuninst1$/);
    const del = first(/^userdel .* -- jtuninst1$/);
    const stopAt = names.indexOf('/usr/bin/systemctl disable --now jit-agent');
    assert.ok(lock >= 0 && del > lock, `disabled before deleted:\n${names.join('\n')}`);
    assert.ok(stopAt > first(/^userdel .* -- jtuninst2$/), `accounts removed before the service stops:\n${names.join('\n')}`);
    assert.deepEqual(rec.log.filter((c) => c[0] === '/usr/bin/systemctl'), [
      ['/usr/bin/systemctl', 'disable', '--now', 'jit-agent'],
      ['/usr/bin/systemctl', 'daemon-reload'],
    ]);
    for (const f of [unitPath, jitCommand, stateFile, `${stateFile}.key`, path.dirname(stateFile)]) {
      await assert.rejects(stat(f), { code: 'ENOENT' }, `${f} removed`);
    }
    const out = h.printed.join('\n');
    assert.match(out, /remove managed account jtuninst1 \(uid \d+\)[^]*jtuninst2[^]*\$ \/usr\/bin\/systemctl disable --now jit-agent/);
  });

  it('takes a live elevation back to its baseline (out of sudo, drop-in gone, its root shell ended) before stopping the service', async () => {
    const backend = new LinuxBackend({ root: sandbox.root });
    await realRun('useradd', ['--prefix', sandbox.root, '-u', '2099901', '-m', '--', 'elly']);
    await realRun('useradd', ['--prefix', sandbox.root, '-u', '2099902', '-G', 'sudo', '--', 'olda']);
    await mkdir(path.join(sandbox.root, 'etc', 'sudoers.d'));
    const stateFile = path.join(dir, 'state', 'state.json');
    const plan = (grantId: string, account: string) =>
      Plan.parse({ grantId, operation: 'elevate-account', account, group: 'Administrators', email: 'e@example.com', startAt: new Date().toISOString(), enableAt: new Date().toISOString(), endAt: new Date(Date.now() + 3_600_000).toISOString(), serverSideSmtp: false, passwordlessSudo: true });
    const record = (grantId: string, account: string, wasMember: boolean) => ({ plan: plan(grantId, account), username: account, step: 'enabled' as const, elevation: { wasMember, sudo: true } });
    await StateStore.create(stateFile, {
      version: 1, serverUrl: 'http://127.0.0.1:9', endpointId: 'e1', credential: 'c', hostname: 'h', sandboxRoot: sandbox.root,
      grants: { g1: record('g1', 'elly', false), g2: record('g2', 'olda', true) }, seenInstructions: [], outbox: [],
    });
    await backend.elevation.addMember('elly', 'Administrators');
    await backend.elevation.grantSudo('elly', 'g1');
    const rootShell = spawn('sh', ['-c', 'echo 2099901 > /proc/self/loginuid && exec sleep 300'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const rec = recorder();
      const h = host('linux', { files: nodeFiles, run: rec.run, definitionPath: path.join(dir, 'none.service'), installDir: path.join(dir, 'opt'), backend: async () => backend });
      await uninstallAgent({ stateFile }, h);
      const sudo = (await readFile(path.join(sandbox.root, 'etc', 'group'), 'utf8')).split('\n').find((l) => l.startsWith('sudo:'));
      assert.equal(sudo, 'sudo:x:27:olda', 'elly out, olda (a member before) kept');
      assert.deepEqual(await readdir(path.join(sandbox.root, 'etc', 'sudoers.d')), []);
      await new Promise((r) => setTimeout(r, 100));
      assert.notEqual(rootShell.exitCode ?? rootShell.signalCode, null, 'the root shell opened from elly’s session was ended');
      assert.match(h.printed.join('\n'), /end the elevation of elly[^]*elly: taken out of Administrators; 1 process\(es\) ended \(logoff\)/);
    } finally {
      rootShell.kill('SIGKILL');
    }
  });
});
