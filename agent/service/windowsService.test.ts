/**
 * install and uninstall on Windows, through a recording runner that answers from a small model
 * of the service control manager and of folder ACLs: every command recorded, every PowerShell
 * script (the -EncodedCommand ones and the build script) parsed by the PowerShell grammar.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { parsePowerShell } from '../../test/support/psParse.ts';
import { WIN_NODE, enrollSpy, fakeBackend, host, memoryFiles, recorder } from '../../test/support/serviceHost.ts';
import { crtSplit } from '../../test/support/serviceParsers.ts';
import type { RunResult } from '../os/exec.ts';
import { AGENT_NODE_FLAGS, installAgent } from './install.ts';
import { uninstallAgent } from './uninstall.ts';
import { PARAMETERS_KEY, windowsCommandLine } from './windows.ts';
import { SERVICE_HOST_SOURCE, renderBuildScript } from './windowsHost.ts';

const SC = 'C:\\Windows\\System32\\sc.exe';
const REG = 'C:\\Windows\\System32\\reg.exe';
const ICACLS = 'C:\\Windows\\System32\\icacls.exe';
const PS = 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe';
const DATA = 'C:\\ProgramData\\jit-agent';
const RUNTIME = 'C:\\Program Files\\jit-agent';
const STATE = `${DATA}\\state.json`;
const SY = 'S-1-5-18';
const BA = 'S-1-5-32-544';
const USERS = 'S-1-5-32-545';
const CREATOR_OWNER = 'S-1-3-0';
const BOB = 'S-1-5-21-1004336348-1177238915-682003330-1001';
const builtAgent = { [path.win32.join('C:\\jit access\\repo', 'dist', 'agent', 'main.js')]: '' };

interface Rule { sid: string; rights: number; allow: boolean; inherited: boolean; inherit: number; propagate: number }
interface Acl { owner: string; protected: boolean; rules: Rule[]; children: number }

const full = (sid: string): Rule => ({ sid, rights: 0x1f01ff, allow: true, inherited: false, inherit: 3, propagate: 0 });
const locked = (children = 0): Acl => ({ owner: BA, protected: true, rules: [full(SY), full(BA)], children });
/** What a folder a standard user made in %ProgramData% looks like: theirs, with Users' inherited create right. */
const madeByBob = (): Acl => ({
  owner: BOB,
  protected: false,
  rules: [
    { ...full(SY), inherited: true },
    { ...full(BA), inherited: true },
    // BUILTIN\Users (CI)(WD,AD,WEA,WA), inherited from %ProgramData%: they may add files and folders.
    { sid: USERS, rights: 0x116, allow: true, inherited: true, inherit: 1, propagate: 0 },
    // CREATOR OWNER (OI)(CI)(IO) GENERIC_ALL: applies only to what is created inside, not to the folder.
    { sid: CREATOR_OWNER, rights: 0x10000000, allow: true, inherited: true, inherit: 3, propagate: 2 },
    { ...full(BOB), inherited: false },
  ],
  children: 1,
});

/** The script inside `powershell.exe … -EncodedCommand B64`, or null. */
function encodedScript(argv: string[]): string | null {
  const i = argv.indexOf('-EncodedCommand');
  return argv[0] === PS && i > 0 ? Buffer.from(argv[i + 1]!, 'base64').toString('utf16le') : null;
}

function scriptPath(script: string): string {
  const m = /^\$Path = '((?:[^']|'')*)'/m.exec(script);
  assert.ok(m, script);
  return m[1]!.replace(/''/g, "'");
}

/**
 * The model: folder ACLs (created protected by the PowerShell create script, changed by icacls,
 * read by the probe script) and the service (absent until sc create, running until sc stop).
 */
function windowsModel(o: { acls?: Record<string, Acl>; service?: 'absent' | 'running'; icaclsWorks?: boolean } = {}) {
  const acls = new Map(Object.entries(o.acls ?? {}));
  const scripts: string[] = [];
  let service: 'absent' | 'running' | 'stopping' | 'stopped' = o.service ?? 'absent';
  const answer = (argv: string[]): Partial<RunResult> | undefined => {
    const script = encodedScript(argv);
    if (script !== null) {
      scripts.push(script);
      const dir = scriptPath(script);
      if (/CreateDirectory/.test(script)) {
        if (acls.has(dir)) return { code: 1, stderr: 'already there' };
        acls.set(dir, locked());
        return {};
      }
      const acl = acls.get(dir);
      if (!acl) return { stdout: JSON.stringify({ exists: false }) };
      const top = { path: dir, dir: true, reparse: false, owner: acl.owner, protected: acl.protected, rules: acl.rules };
      const children = Array.from({ length: acl.children }, (_, i) => ({ path: `${dir}\\child${i}`, dir: false, reparse: false, owner: acl.owner, protected: false, rules: acl.rules.map((r) => ({ ...r, inherited: true })) }));
      return { stdout: `${JSON.stringify({ exists: true, top, childCount: children.length, children })}\r\n` };
    }
    if (argv[0] === ICACLS && o.icaclsWorks !== false) {
      const dir = argv[1]!.replace(/\\\*$/, '');
      const acl = acls.get(dir);
      if (!acl) return { code: 2, stderr: 'The system cannot find the file specified.' };
      if (argv.includes('/setowner')) acl.owner = BA;
      if (argv.includes('/inheritance:r')) Object.assign(acl, { protected: true, rules: [...acl.rules.filter((r) => !r.inherited && ![SY, BA].includes(r.sid)), full(SY), full(BA)] });
      if (argv.includes('/remove')) acl.rules = acl.rules.filter((r) => !argv.includes(`*${r.sid}`));
      return {};
    }
    if (argv[0] !== SC) return undefined;
    if (argv[1] === 'query') {
      if (service === 'absent') return { code: 1060, stdout: 'The specified service does not exist as an installed service.' };
      if (service === 'stopping') {
        service = 'stopped';
        return { stdout: 'SERVICE_NAME: jit-agent\r\n        STATE              : 3  STOP_PENDING\r\n' };
      }
      return { stdout: `SERVICE_NAME: jit-agent\r\n        STATE              : ${service === 'running' ? '4  RUNNING' : '1  STOPPED'}\r\n` };
    }
    if (argv[1] === 'create') service = 'running';
    if (argv[1] === 'stop') service = 'stopping';
    if (argv[1] === 'delete') service = 'absent';
    return undefined;
  };
  return { answer, acls, scripts };
}

/** One line per command, PowerShell scripts named by what they do. */
function summary(log: string[][]): string[] {
  return log.map((c) => {
    const script = encodedScript(c);
    if (script !== null) return `${/CreateDirectory/.test(script) ? 'create-protected' : 'probe-acl'} ${scriptPath(script)}`;
    const name = path.win32.basename(c[0]!);
    return name === 'powershell.exe' ? `powershell -File ${c.at(-1)}` : [name, ...c.slice(1, name === 'reg.exe' ? 7 : 4)].join(' ');
  });
}

describe('service: Windows', () => {
  const agentArgs = [...AGENT_NODE_FLAGS, `${RUNTIME}\\dist\\agent\\main.js`, 'run', '--state', STATE];

  it('install: checks, creates protected, locks and reads back both folders; node and the agent into Program Files; the service runs only from there', async () => {
    const files = memoryFiles(builtAgent);
    const model = windowsModel();
    const rec = recorder(model.answer);
    const spy = enrollSpy();
    await installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, host('win32', { files, run: rec.run }));
    assert.deepEqual(spy.calls, [STATE]);
    const lock = (dir: string) => [`icacls.exe ${dir} /setowner *${BA}`, `icacls.exe ${dir} /inheritance:r /grant:r`];
    assert.deepEqual(summary(rec.log), [
      `probe-acl ${DATA}`,
      `probe-acl ${RUNTIME}`,
      `probe-acl ${RUNTIME}.new`,
      `probe-acl ${RUNTIME}.old`,
      `create-protected ${DATA}`,
      ...lock(DATA),
      `probe-acl ${DATA}`,
      'sc.exe query jit-agent',
      `create-protected ${RUNTIME}.new`,
      `powershell -File ${RUNTIME}.new\\build-service-host.ps1`,
      ...lock(`${RUNTIME}.new`),
      `icacls.exe ${RUNTIME}.new\\* /reset /T`,
      `probe-acl ${RUNTIME}.new`,
      'sc.exe create jit-agent binPath=',
      `reg.exe add ${PARAMETERS_KEY} /v Application /t REG_SZ`,
      `reg.exe add ${PARAMETERS_KEY} /v AppParameters /t REG_SZ`,
      `reg.exe add ${PARAMETERS_KEY} /v AppDirectory /t REG_SZ`,
      `reg.exe add ${PARAMETERS_KEY} /v AppLog /t REG_SZ`,
      'sc.exe description jit-agent Creates, enables and deletes the temporary local accounts of jit-access grants.',
      'sc.exe failure jit-agent reset=',
      'sc.exe failureflag jit-agent 1',
      'sc.exe start jit-agent',
    ]);
    const find = (pred: (c: string[]) => boolean) => rec.log.find(pred)!;
    assert.deepEqual(find((c) => c[2] === '/inheritance:r'), [ICACLS, DATA, '/inheritance:r', '/grant:r', `*${SY}:(OI)(CI)F`, `*${BA}:(OI)(CI)F`, '/Q']);
    assert.deepEqual(find((c) => c[1] === 'create'), [SC, 'create', 'jit-agent', 'binPath=', `"${RUNTIME}\\jit-agent-service.exe"`, 'start=', 'auto', 'DisplayName=', 'jit-access agent']);
    const reg = (v: string) => find((c) => c[0] === REG && c[4] === v)[8];
    assert.deepEqual([reg('Application'), reg('AppParameters'), reg('AppDirectory'), reg('AppLog')], [`${RUNTIME}\\node.exe`, windowsCommandLine(agentArgs), RUNTIME, `${DATA}\\agent.log`]);
    assert.deepEqual(crtSplit(windowsCommandLine(agentArgs)), agentArgs, 'node.exe gets back exactly these arguments');
    // Every program by absolute path: nothing resolved from PATH or the current folder.
    for (const c of rec.log) assert.match(c[0]!, /^C:\\Windows\\System32\\/, c.join(' '));
    assert.ok(files.copies.includes(`${WIN_NODE} -> ${RUNTIME}.new\\node.exe`), files.copies.join('\n'));
    assert.ok(files.files.has(`${RUNTIME}\\node.exe`) && files.files.has(`${RUNTIME}\\dist\\agent\\main.js`) && !files.dirs.has(`${RUNTIME}.new`));

    for (const script of model.scripts) {
      const parsed = await parsePowerShell(script);
      assert.equal(parsed.ok, true, `${parsed.errors.join('\n')}\n${script}`);
    }
    const build = files.files.get(`${RUNTIME}\\build-service-host.ps1`)!.text;
    assert.ok(build.startsWith('\uFEFF'), 'UTF-8 BOM, so Windows PowerShell 5.1 does not read it as ANSI');
    const parsed = await parsePowerShell(build.slice(1));
    assert.equal(parsed.ok, true, parsed.errors.join('\n'));
    assert.ok(parsed.literals.some((l) => l.kind === 'verbatim' && l.text === `'${RUNTIME}.new\\jit-agent-service.exe'`), 'compiled into the new copy, moved with it');
    assert.match(build, /Add-Type -TypeDefinition \$Source -Language CSharp -ReferencedAssemblies 'System\.ServiceProcess' -OutputAssembly \$OutFile -OutputType ConsoleApplication/);
  });

  it('refuses a %ProgramData%\\jit-agent a standard user made, naming owner and entries, before changing anything', async () => {
    const files = memoryFiles({ ...builtAgent, [STATE]: '{"serverUrl":"https://attacker.example"}' });
    const model = windowsModel({ acls: { [DATA]: madeByBob() } });
    const rec = recorder(model.answer);
    const spy = enrollSpy();
    const err = await installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, host('win32', { files, run: rec.run })).then(() => null, (e: Error) => e);
    assert.ok(err, 'refused');
    assert.match(err.message, new RegExp(`refusing to install[^]*jit-agent is owned by ${BOB}, not SYSTEM or Administrators[^]*can be changed by ${USERS} \\(rights 0x116\\)[^]*can be changed by ${BOB}[^]*child0 is owned by ${BOB}[^]*Nothing was changed`));
    assert.doesNotMatch(err.message, new RegExp(CREATOR_OWNER), 'an inherit-only entry does not apply to the folder itself');
    assert.deepEqual(summary(rec.log).filter((l) => !l.startsWith('probe-acl')), [], 'only reads');
    assert.deepEqual(spy.calls, []);
  });

  it('keeps a folder Administrators own, removes every other SID\'s entries, resets the children, and reads it back', async () => {
    const acl: Acl = { owner: BA, protected: false, rules: [{ ...full(SY), inherited: true }, { ...full(BA), inherited: true }, { sid: USERS, rights: 0x1200a9, allow: true, inherited: false, inherit: 3, propagate: 0 }], children: 2 };
    const model = windowsModel({ acls: { [DATA]: acl } });
    const rec = recorder(model.answer);
    const files = memoryFiles({ ...builtAgent, [STATE]: '{}' });
    await installAgent({ serverUrl: 'https://jit.example', enroll: enrollSpy().enroll }, host('win32', { files, run: rec.run }));
    const forData = rec.log.filter((c) => c[0] === ICACLS && c[1]!.startsWith(DATA));
    assert.deepEqual(forData, [
      [ICACLS, DATA, '/setowner', `*${BA}`, '/T', '/Q'],
      [ICACLS, DATA, '/inheritance:r', '/grant:r', `*${SY}:(OI)(CI)F`, `*${BA}:(OI)(CI)F`, '/Q'],
      [ICACLS, DATA, '/remove', `*${USERS}`, '/Q'],
      [ICACLS, `${DATA}\\*`, '/reset', '/T', '/Q'],
    ]);
    assert.deepEqual(model.acls.get(DATA)!.rules.map((r) => r.sid), [SY, BA]);
  });

  it('stops when the ACL read back after locking is not exactly SYSTEM and Administrators', async () => {
    const acl: Acl = { owner: BA, protected: false, rules: [{ ...full(SY), inherited: true }, { ...full(BA), inherited: true }], children: 0 };
    const rec = recorder(windowsModel({ acls: { [DATA]: acl }, icaclsWorks: false }).answer);
    const files = memoryFiles({ ...builtAgent, [STATE]: '{}' });
    await assert.rejects(installAgent({ serverUrl: 'https://jit.example', enroll: enrollSpy().enroll }, host('win32', { files, run: rec.run })), /after locking C:\\ProgramData\\jit-agent, its ACL is not what it must be:[^]*still inherits permissions/);
    assert.deepEqual(rec.log.filter((c) => c[0] === SC), [], 'no service touched');
  });

  it('a second install stops the service before replacing the runtime folder, reconfigures it, and removes an older install\'s files', async () => {
    const legacyExe = `${DATA}\\jit-agent-service.exe`;
    const files = memoryFiles({ ...builtAgent, [STATE]: '{}', [legacyExe]: 'MZ', [`${RUNTIME}\\node.exe`]: 'old' });
    files.dirs.set(RUNTIME, 0);
    const model = windowsModel({ acls: { [DATA]: locked(2), [RUNTIME]: locked(3) }, service: 'running' });
    const rec = recorder(model.answer);
    const spy = enrollSpy();
    await installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, host('win32', { files, run: rec.run }));
    assert.deepEqual(spy.calls, []);
    const lines = summary(rec.log);
    const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
    assert.deepEqual(rec.log.filter((c) => c[0] === SC).map((c) => c[1]), ['query', 'stop', 'query', 'query', 'config', 'description', 'failure', 'failureflag', 'start']);
    assert.ok(at('sc.exe stop') < at(`create-protected ${RUNTIME}.new`), lines.join('\n'));
    assert.equal(files.files.get(`${RUNTIME}\\node.exe`)?.text, `copy of ${WIN_NODE}`);
    assert.equal(files.files.has(legacyExe), false);
  });

  it('uninstall: accounts first (disable, logoff, delete, purge), then sc stop, wait, sc delete, the runtime folder', async () => {
    const files = memoryFiles({ [STATE]: '{}', [`${STATE}.key`]: 'k', [`${RUNTIME}\\node.exe`]: 'MZ', [`${DATA}\\build-service-host.ps1`]: 'x' });
    files.dirs.set(RUNTIME, 0);
    const log: string[][] = [];
    const rec = recorder(windowsModel({ service: 'running' }).answer, log);
    const fake = fakeBackend(['jt1'], log);
    await uninstallAgent({}, host('win32', { files, run: rec.run, backend: async () => fake.backend }));
    const steps = log.map((c) => (c[0] === SC ? `sc ${c[1]}` : c.slice(0, 2).join(' ')));
    assert.deepEqual(steps, ['disable jt1', 'logoff jt1', 'delete jt1', 'purge jt1', 'sc query', 'sc stop', 'sc query', 'sc query', 'sc delete', 'dropMarker']);
    for (const f of [STATE, `${STATE}.key`, `${RUNTIME}\\node.exe`, `${DATA}\\build-service-host.ps1`]) assert.equal(files.files.has(f), false, `${f} removed`);
    assert.equal(files.dirs.has(RUNTIME), false);
  });

  it('the service host is C# 5 and cannot end the here-string; command lines round-trip', () => {
    // Add-Type in Windows PowerShell 5.1 compiles with the .NET Framework's C# 5 compiler.
    for (const c6 of [/\$"/, /\?\./, /=>/, /\bnameof\b/]) assert.doesNotMatch(SERVICE_HOST_SOURCE, c6);
    assert.doesNotMatch(SERVICE_HOST_SOURCE, /^'@/m);
    assert.match(SERVICE_HOST_SOURCE, /Environment\.Exit\(1\)/, 'a crashed agent ends the service process, so sc failure actions restart it');
    for (const args of [
      ['plain', 'C:\\Program Files\\x\\main.ts', ''],
      ['ends\\', 'dir with space\\', 'a"b', 'a\\"b', '\\\\server\\share', 'sp ace'],
    ]) {
      assert.deepEqual(crtSplit(windowsCommandLine(args)), args);
    }
    assert.throws(() => windowsCommandLine(['a\nb']), /control character/);
    assert.throws(() => renderBuildScript('C:\\Prögram\\x.exe'), /ASCII/);
  });
});
