/**
 * install on Linux: the systemd unit through systemd-analyze verify, on a real install into a
 * temporary root (node and the agent really copied, owners and modes read back, the copied
 * agent really started). Service commands are recorded, never run: nothing here touches this
 * machine's /etc, /opt or systemd. macOS is in launchd.test.ts, Windows in windowsService.test.ts.
 */
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { run as realRun, type Runner } from '../os/exec.ts';
import { REPO, capture, enrollSpy, host, memoryFiles, recorder } from '../../test/support/serviceHost.ts';
import { execWords, parseUnit } from '../../test/support/serviceParsers.ts';
import { AGENT_NODE_FLAGS, installAgent } from './install.ts';
import { nodeFiles } from './nodeFiles.ts';
import { LEFTOVER_DIRS } from '../os/linux-purge.ts';
import { renderSystemdUnit } from './systemd.ts';

const SYSTEMCTL = '/usr/bin/systemctl';
const builtAgent = { [path.join(REPO, 'dist', 'agent', 'main.js')]: '' };

/** Records every command; runs only the library check (ldd through /usr/bin/env), which reads. */
function recordingLdd(log: string[][]): Runner {
  return async (file, argv, opts) => {
    log.push([file, ...argv]);
    if (file === '/usr/bin/env' && argv.includes('/usr/bin/ldd')) return realRun(file, argv, opts);
    return { code: 0, stdout: '', stderr: '' };
  };
}

async function verifyUnit(dir: string, text: string): Promise<void> {
  const file = path.join(dir, 'jit-agent.service');
  await writeFile(file, text);
  const r = await capture('/usr/bin/systemd-analyze', ['verify', file], dir);
  const ours = r.stderr.split('\n').filter((l) => l.includes('jit-agent.service'));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ours, [], `systemd-analyze complained:\n${r.stderr}`);
}

describe('service: Linux install into a temporary root (real copy, real owners and modes)', () => {
  let dir: string;
  let runtime: string;
  let unitPath: string;
  let stateFile: string;
  let jitCommand: string;
  let log: string[][];
  let spy: ReturnType<typeof enrollSpy>;
  let h: ReturnType<typeof host>;
  const enroll = async (f: string) => {
    await spy.enroll(f);
    await writeFile(f, '{}', { mode: 0o600 });
  };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-install-'));
    runtime = path.join(dir, 'opt', 'jit-agent');
    unitPath = path.join(dir, 'etc', 'systemd', 'system', 'jit-agent.service');
    stateFile = path.join(dir, 'var', 'lib', 'jit-agent', 'state.json');
    log = [];
    spy = enrollSpy();
    // payload: undefined, so install plans the real copy of this repository and this node.
    jitCommand = path.join(dir, 'usr', 'local', 'bin', 'jit');
    h = host('linux', { files: nodeFiles, run: recordingLdd(log), definitionPath: unitPath, installDir: runtime, commandPath: jitCommand, payload: undefined });
    await installAgent({ stateFile, serverUrl: 'https://jit.example', enroll }, h);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('copies node and the agent into the runtime folder, checks node\'s libraries, then daemon-reload and enable --now', async () => {
    assert.deepEqual(spy.calls, [stateFile]);
    assert.deepEqual(log, [
      ['/usr/bin/env', '-i', '/usr/bin/ldd', process.execPath],
      ['/usr/bin/env', '-i', '/usr/bin/ldd', `${runtime}.new/bin/node`],
      [SYSTEMCTL, 'daemon-reload'],
      [SYSTEMCTL, 'enable', '--now', 'jit-agent'],
    ]);
    const out = h.printed.join('\n');
    assert.match(out, /copy node \(.*\) and the built agent into .*jit-agent\.new: \d+ files, [\d.]+ MiB: node [\d.]+ MiB, \d+ packages/);
    assert.match(out, /checked: .*jit-agent\.new\/bin\/node loads \d+ libraries, all root's/);
    assert.deepEqual(await readdir(path.dirname(runtime)), ['jit-agent'], 'no .new or .old left');
  });

  it('the unit passes systemd-analyze verify and names only the runtime folder; its ExecStart really starts the copied agent', async () => {
    const text = await readFile(unitPath, 'utf8');
    await verifyUnit(dir, text);
    const service = parseUnit(text).get('Service')!;
    const argv = execWords(service.get('ExecStart')![0]!);
    assert.deepEqual(argv, [path.join(runtime, 'bin', 'node'), ...AGENT_NODE_FLAGS, path.join(runtime, 'dist', 'agent', 'main.js'), 'run', '--state', stateFile]);
    assert.deepEqual(service.get('WorkingDirectory'), [runtime]);
    assert.doesNotMatch(text, new RegExp(REPO.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'nothing of the checkout');
    // Why run it: verify only checks that the program exists, not that node takes these flags
    // or that the copied agent starts. It gets as far as reading its (missing) state file.
    const missing = path.join(dir, 'missing', 'state.json');
    const r = await capture(argv[0]!, [...argv.slice(1, -1), missing], runtime);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /jit-agent: ENOENT: no such file or directory, open '.*missing\/state\.json'/);
  });

  it('puts the jit command on the PATH (0755, root\'s): it runs the copied jit.js with the copied node', async () => {
    const st = await stat(jitCommand);
    assert.equal(st.mode & 0o777, 0o755);
    assert.equal(st.uid, 0);
    assert.equal(await readFile(jitCommand, 'utf8'), `#!/bin/sh\n# jit: time left, end early, ask for access (installed by jit-agent install, removed by its uninstall)\nexec '${runtime}/bin/node' '${runtime}/dist/agent/jit.js' "$@"\n`);
    // No agent behind the folder it is pointed at: the copied command starts, and says so (exit 3).
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn(jitCommand, ['status'], { env: { ...process.env, JIT_AGENT_DIR: path.join(dir, 'no-agent') } });
      let stderr = '';
      p.stderr.on('data', (d) => (stderr += d));
      p.on('exit', (code) => resolve({ code, stderr }));
    });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /the jit-access agent is not running on this machine/);
  });

  it('the copy holds every module the built agent imports, static and dynamic', async () => {
    const modules: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (p.endsWith('.js') && p !== path.join(runtime, 'dist', 'agent', 'main.js')) modules.push(p);
      }
    };
    await walk(path.join(runtime, 'dist'));
    const script = [
      "import { createRequire } from 'node:module';",
      `for (const m of ${JSON.stringify(modules)}) await import(m);`,
      // The one bare dynamic import: node-powershell, from the Windows backend.
      `await import(createRequire(${JSON.stringify(path.join(runtime, 'dist', 'agent', 'os', 'windows.js'))}).resolve('node-powershell'));`,
      "process.stdout.write('ok ' + process.execPath);",
    ].join('\n');
    const r = await capture(path.join(runtime, 'bin', 'node'), ['--input-type=module', '-e', script], os.tmpdir());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `ok ${path.join(runtime, 'bin', 'node')}`);
    assert.ok(modules.length > 20, modules.join('\n'));
  });

  it('everything installed is root\'s alone: runtime 0755, state folder 0700, unit 0644, no links, no group/other write', async () => {
    const problems: string[] = [];
    let count = 0;
    const walk = async (p: string): Promise<void> => {
      const st = await lstat(p);
      count++;
      if (st.isSymbolicLink() || st.uid !== 0 || st.gid !== 0 || st.mode & 0o022) problems.push(`${p} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`);
      if (st.isDirectory()) for (const name of await readdir(p)) await walk(path.join(p, name));
    };
    await walk(runtime);
    assert.deepEqual(problems, []);
    assert.ok(count > 1000, `${count} entries`);
    const mode = async (p: string) => ((await stat(p)).mode & 0o7777).toString(8);
    assert.deepEqual(
      [await mode(runtime), await mode(path.join(runtime, 'bin', 'node')), await mode(path.join(runtime, 'dist', 'agent', 'main.js')), await mode(path.dirname(stateFile)), await mode(unitPath)],
      ['755', '755', '644', '700', '644'],
    );
    assert.deepEqual(JSON.parse(await readFile(path.join(runtime, 'package.json'), 'utf8')).type, 'module');
  });

  it('restarts always, runs as root, and only uses hardening that the account tools survive', async () => {
    const unit = parseUnit(await readFile(unitPath, 'utf8'));
    const service = unit.get('Service')!;
    const one = (k: string) => service.get(k)?.[0];
    assert.equal(one('Restart'), 'always');
    assert.equal(unit.get('Unit')!.get('StartLimitIntervalSec')?.[0], '0');
    assert.deepEqual(unit.get('Install')!.get('WantedBy'), ['multi-user.target']);
    for (const k of ['User', 'DynamicUser', 'PrivateUsers', 'ProtectHome', 'ProtectProc', 'ProcSubset', 'MemoryDenyWriteExecute', 'PrivateNetwork', 'NoNewPrivileges', 'PrivateTmp']) {
      assert.equal(service.get(k), undefined, `${k} would break the agent`);
    }
    assert.equal(one('ProtectSystem'), 'strict');
    const writable = one('ReadWritePaths')!.split(' ');
    for (const p of ['/etc', '/home', path.dirname(stateFile), '/tmp']) assert.ok(writable.includes(p), `${p} writable`);
    // Where purge clears a deleted account's leftovers (agent/os/linux-purge.ts): the shared ones, not private copies.
    for (const p of LEFTOVER_DIRS.filter((d) => d !== '/dev/shm')) assert.ok(writable.includes(p) || writable.includes(`-${p}`), `${p} writable`);
    assert.ok(!writable.some((p) => p.includes('jit-agent') && p.startsWith(runtime)), 'the runtime stays read-only');
    const caps = one('CapabilityBoundingSet')!.split(' ');
    for (const c of ['CAP_KILL', 'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_AUDIT_WRITE', 'CAP_SETUID', 'CAP_SETGID']) assert.ok(caps.includes(c), c);
    assert.ok(!caps.includes('CAP_SYS_ADMIN'));
    assert.match(one('RestrictAddressFamilies')!, /AF_INET6.*AF_NETLINK|AF_NETLINK.*AF_INET6/);
  });

  it('a second install keeps the enrollment, swaps in a fresh copy and restarts', async () => {
    const marker = path.join(runtime, 'left-from-before');
    await writeFile(marker, 'x');
    log.length = 0;
    await installAgent({ stateFile, serverUrl: 'https://jit.example', enroll }, h);
    assert.equal(spy.calls.length, 1, 'an existing state file is never overwritten by a new enrollment');
    assert.match(h.printed.join('\n'), /already enrolled/);
    assert.deepEqual(log.filter((c) => c[0] === SYSTEMCTL), [
      [SYSTEMCTL, 'daemon-reload'],
      [SYSTEMCTL, 'enable', 'jit-agent'],
      [SYSTEMCTL, 'restart', 'jit-agent'],
    ]);
    await assert.rejects(stat(marker), { code: 'ENOENT' }, 'the old copy is gone');
    assert.deepEqual(await readdir(path.dirname(runtime)), ['jit-agent']);
    assert.equal((await stat(path.join(runtime, 'bin', 'node'))).mode & 0o777, 0o755);
  });
});

describe('service: systemd unit rendering', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'jit-unit-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('quotes paths with spaces, % and $ so that systemd reads them back unchanged', async () => {
    const stateFile = path.join(dir, 'a b', '100% $HOME "x"', 'state.json');
    const argv = [process.execPath, ...AGENT_NODE_FLAGS, path.join(REPO, 'dist', 'agent', 'main.js'), 'run', '--state', stateFile];
    // The quote in the folder is refused for ReadWritePaths; a state file in a folder without it is fine.
    assert.throws(() => renderSystemdUnit({ argv, workingDirectory: REPO, stateFile }), /quote or backslash/);
    const plainDir = path.join(dir, 'a b', '100% $HOME');
    const ok = path.join(plainDir, 'state.json');
    const text = renderSystemdUnit({ argv: [...argv.slice(0, -1), ok], workingDirectory: REPO, stateFile: ok });
    await verifyUnit(dir, text);
    const service = parseUnit(text).get('Service')!;
    assert.deepEqual(execWords(service.get('ExecStart')![0]!).at(-1), ok);
    assert.ok(service.get('ReadWritePaths')![0]!.endsWith(`"${plainDir.replace(/%/g, '%%')}"`));
  });

  it('refuses values that would inject unit lines', () => {
    const bad = '/tmp/x\nExecStartPre=/bin/sh -c evil';
    assert.throws(() => renderSystemdUnit({ argv: [process.execPath, 'run', '--state', bad], workingDirectory: REPO, stateFile: '/tmp/s.json' }), /control character/);
    assert.throws(() => renderSystemdUnit({ argv: [process.execPath], workingDirectory: REPO, stateFile: bad }), /control character/);
    assert.throws(() => renderSystemdUnit({ argv: ['node'], workingDirectory: REPO, stateFile: '/tmp/s.json' }), /absolute/);
  });
});

describe('service: Linux install plan (in memory)', () => {
  it('state folder 0700, enroll, runtime copied to /opt/jit-agent, unit, then systemctl by absolute path', async () => {
    const files = memoryFiles(builtAgent);
    const rec = recorder();
    const spy = enrollSpy();
    const h = host('linux', { files, run: rec.run });
    await installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, h);
    assert.deepEqual(spy.calls, ['/var/lib/jit-agent/state.json'], 'default state path');
    assert.equal(files.dirs.get('/var/lib/jit-agent'), 0o700);
    assert.equal(files.dirs.get('/opt/jit-agent'), 0o755);
    assert.equal(files.files.get('/opt/jit-agent/bin/node')?.mode, 0o755);
    assert.deepEqual(rec.log.map((c) => c.join(' ')), [
      `/usr/bin/env -i /usr/bin/ldd ${process.execPath}`,
      '/usr/bin/env -i /usr/bin/ldd /opt/jit-agent.new/bin/node',
      `${SYSTEMCTL} daemon-reload`,
      `${SYSTEMCTL} enable --now jit-agent`,
    ]);
    const unit = files.files.get('/etc/systemd/system/jit-agent.service')!;
    assert.equal(unit.mode, 0o644);
    assert.match(unit.text, /^ExecStart=\/opt\/jit-agent\/bin\/node .* \/opt\/jit-agent\/dist\/agent\/main\.js run --state \/var\/lib\/jit-agent\/state\.json$/m);
    assert.match(unit.text, /^WorkingDirectory=\/opt\/jit-agent$/m);
    // Every step is announced before it happens.
    assert.match(h.printed.join('\n'), /create \/var\/lib\/jit-agent[^]*enroll with https:\/\/jit\.example[^]*copy node[^]*move \/opt\/jit-agent\.new to \/opt\/jit-agent[^]*write the systemd unit[^]*\$ \/usr\/bin\/systemctl daemon-reload[^]*\$ \/usr\/bin\/systemctl enable --now jit-agent/);
    assert.doesNotMatch(h.printed.join('\n'), /token=|TOKEN/);
  });

  it('install refuses without the built agent, before doing anything', async () => {
    const files = memoryFiles();
    const rec = recorder();
    const spy = enrollSpy();
    const h = host('linux', { files, run: rec.run });
    const missing = path.join(REPO, 'dist', 'agent', 'main.js');
    await assert.rejects(installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, h), { message: `${missing} is missing: run npm ci (or npm run build:agent) first` });
    assert.deepEqual([rec.log, spy.calls, h.printed, files.files.size, files.dirs.size], [[], [], [], 0, 0]);
  });

  it('--dry-run prints every step, runs only read-only checks, and changes nothing', async () => {
    const files = memoryFiles(builtAgent);
    const rec = recorder();
    const spy = enrollSpy();
    const h = host('linux', { files, run: rec.run });
    await installAgent({ dryRun: true, serverUrl: 'https://jit.example', enroll: spy.enroll }, h);
    assert.deepEqual([rec.log, spy.calls, files.files.size, files.dirs.size], [[['/usr/bin/env', '-i', '/usr/bin/ldd', process.execPath]], [], 1, 0]);
    const out = h.printed.join('\n');
    for (const step of [
      /install: \[dry run\] would create \/var\/lib\/jit-agent/,
      /install: \[dry run\] would enroll with https:\/\/jit\.example/,
      /install: \[dry run\] would copy node .* into \/opt\/jit-agent\.new: 3 files/,
      /install: \[dry run\] would write the systemd unit \/etc\/systemd\/system\/jit-agent\.service/,
      /install: \[dry run\] would \$ \/usr\/bin\/systemctl enable --now jit-agent/,
    ]) assert.match(out, step);
  });
});
