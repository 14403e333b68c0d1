import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runAs, shadowOf, until } from '../../test/support/accounts.ts';
import { inAnHour, newName, newPassword } from './contract.ts';
import { run } from './exec.ts';
import { BACKSTOP_SCRIPT, backstopSpec, systemdArg, systemdRunArgv, type BackstopSpec } from './linux-backstop.ts';

/** The timer systemd-run makes, as unit files: what `systemd-analyze verify` can read. */
function unitFiles(s: BackstopSpec): { timer: string; service: string } {
  const quote = (a: string) => `"${systemdArg(a).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
  return {
    timer: ['[Unit]', `Description=${s.description}`, '', '[Timer]', ...Object.entries(s.timer).map(([k, v]) => `${k}=${v}`), `Unit=${s.unit}.service`, ''].join('\n'),
    service: ['[Unit]', `Description=${s.description}`, '', '[Service]', ...Object.entries(s.service).map(([k, v]) => `${k}=${v}`), `ExecStart=${s.command.map(quote).join(' ')}`, ''].join('\n'),
  };
}
import { LinuxBackend, MARKER_GROUP } from './linux.ts';
import { makeSandboxRoot } from './sandboxRoot.ts';

const canRun = process.platform === 'linux' && process.getuid?.() === 0;

describe('Linux backstop: the systemd timer as systemd reads it', () => {
  const at = new Date('2031-02-03T04:05:06.700Z');
  const spec = backstopSpec('jtabc', '2001000042', at);

  it('fires at the end rounded up to the second (never early), in UTC, and is gone once it has fired', () => {
    assert.equal(spec.timer.OnCalendar, '2031-02-03 04:05:07 UTC');
    assert.equal(backstopSpec('jtabc', '1', new Date('2031-02-03T04:05:06.000Z')).timer.OnCalendar, '2031-02-03 04:05:06 UTC');
    assert.equal(spec.timer.AccuracySec, '1s');
    const argv = systemdRunArgv(spec);
    assert.ok(argv.includes('--on-calendar=2031-02-03 04:05:07 UTC'));
    assert.ok(argv.includes('--timer-property=AccuracySec=1s') && argv.includes('--collect'));
    assert.deepEqual(argv.slice(argv.indexOf('--') + 1, argv.indexOf('--') + 3), ['/bin/sh', '-c']);
    // systemd reads $ as its own variables: the script reaches sh with $$ turned back into $.
    assert.equal(argv[argv.indexOf('--') + 3], BACKSTOP_SCRIPT.replace(/\$/g, '$$$$'));
    assert.deepEqual(argv.slice(-4), ['jit-backstop', 'jtabc', '2001000042', '']);
  });

  it('passes systemd-analyze verify as unit files, and the script passes sh -n', async function () {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'jit-backstop-'));
    try {
      const units = unitFiles(spec);
      await writeFile(path.join(dir, `${spec.unit}.service`), units.service);
      await writeFile(path.join(dir, `${spec.unit}.timer`), units.timer);
      const r = await run('/usr/bin/systemd-analyze', ['verify', path.join(dir, `${spec.unit}.timer`), path.join(dir, `${spec.unit}.service`)], { okCodes: [0, 1] });
      const ours = r.stderr.split('\n').filter((l) => l.includes(spec.unit));
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(ours, []);
      await run('sh', ['-n', '-c', BACKSTOP_SCRIPT]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

(canRun ? describe : describe.skip)('Linux backstop on a sandbox root (the same script, run for real)', function () {
  let root: string;
  let cleanup: () => Promise<void>;
  let b: LinuxBackend;
  const uidMin = 2_000_000 + randomInt(100) * 1000;

  beforeEach(async () => {
    ({ root, cleanup } = await makeSandboxRoot());
    b = new LinuxBackend({ root, uidMin, uidMax: uidMin + 999 });
  });
  afterEach(() => cleanup());

  const enabledAccount = async () => {
    const name = newName();
    const info = await b.createDisabled({ name, group: 'Users', grantId: 'g1', expiresAt: inAnHour() }, newPassword());
    await b.enable(name, inAnHour());
    return { name, uid: Number(info.id) };
  };
  const script = (...args: string[]) => run('sh', ['-c', BACKSTOP_SCRIPT, 'jit-backstop', ...args]);

  it('locks and expires the account and ends its processes', async () => {
    const { name, uid } = await enabledAccount();
    const session = await runAs(uid);
    try {
      await script(name, String(uid), root);
      assert.deepEqual(await shadowOf(root, name).then((s) => [s.password[0], s.expire]), ['!', '1']);
      await until(() => !session.alive(), 2000, 'the session is killed');
    } finally {
      session.kill();
    }
  });

  it('touches nothing when the name has another uid, lacks the tag or the marker group', async () => {
    const { name, uid } = await enabledAccount();
    await script(name, String(uid + 1), root);
    await run('useradd', ['--prefix', root, '-u', String(uid + 2), '-c', 'jit-access grant=x', '--', 'jtnomarker']);
    await run('chpasswd', ['-c', 'SHA512', '-R', root], { stdin: 'jtnomarker:Pw-123456789\n' });
    await script('jtnomarker', String(uid + 2), root);
    assert.notEqual((await shadowOf(root, name)).expire, '1');
    assert.notEqual((await shadowOf(root, 'jtnomarker')).expire, '1');
    assert.ok(MARKER_GROUP);
  });

  it('as a detached timer (no systemd here): outlives nothing it should not, fires within 0.7 s of the end (never before), and is disarmed', async () => {
    const first = await enabledAccount();
    const second = await enabledAccount();
    const session = await runAs(first.uid);
    try {
      const end = Date.now() + 1500;
      assert.equal(await b.armBackstop(first.name, new Date(end)), 'timer');
      assert.equal(await b.armBackstop(second.name, new Date(end)), 'timer');
      await b.disarmBackstop(second.name);
      let disabledAt = 0;
      while (!disabledAt && Date.now() < end + 4000) {
        if ((await shadowOf(root, first.name)).expire === '1') disabledAt = Date.now();
        else await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(disabledAt >= end, `the backstop disables the account, never early (${disabledAt - end} ms)`);
      // Checked every 0.1 s near the end (not to the whole second): then usermod itself.
      assert.ok(disabledAt - end < 700, `and ${disabledAt - end} ms after the end`);
      await until(() => !session.alive(), 2000, 'and ends its session');
      await new Promise((r) => setTimeout(r, 1500));
      assert.notEqual((await shadowOf(root, second.name)).expire, '1', 'a disarmed backstop does nothing');
      await b.disarmBackstop(first.name);
      await b.disarmBackstop('jtnotarmed');
    } finally {
      session.kill();
    }
  });

  it('arming again for the same end keeps the running timer; for another end replaces it', async () => {
    const { name } = await enabledAccount();
    const pidOf = () => readFile(path.join(root, 'run', 'jit-agent', 'backstop', `${name}.pid`), 'utf8');
    const end = inAnHour();
    await b.armBackstop(name, end);
    const first = await pidOf();
    await b.armBackstop(name, end);
    assert.equal(await pidOf(), first, 'the same process');
    await b.armBackstop(name, new Date(end.getTime() + 60_000));
    assert.notEqual(await pidOf(), first);
    assert.throws(() => process.kill(Number(first), 0), 'the old one is gone');
    await b.disarmBackstop(name);
  });
});
