/**
 * install/uninstall: the systemd unit through systemd-analyze verify, the launchd plist
 * through an XML parser, every Windows command line recorded and the build script parsed by
 * the PowerShell grammar, and uninstall on real (sandboxed) Linux accounts. Nothing here
 * touches the machine's services: every host is injected, and service commands are recorded.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { parsePowerShell } from '../../test/support/psParse.ts';
import { AccountError, type AccountBackend, type AccountInfo } from '../os/backend.ts';
import { run as realRun, type RunResult, type Runner } from '../os/exec.ts';
import { LinuxBackend } from '../os/linux.ts';
import { makeSandboxRoot } from '../os/sandboxRoot.ts';
import { loadOrCreateKey } from '../localKey.ts';
import { StateStore } from '../state.ts';
import { AGENT_NODE_FLAGS, NotPrivilegedError, installAgent, nodeFiles, uninstallAgent, type ServiceFiles, type ServiceHost, type ServicePlatform } from './install.ts';
import { LAUNCHD_LABEL, renderLaunchdPlist } from './launchd.ts';
import { renderSystemdUnit } from './systemd.ts';
import { PARAMETERS_KEY, SERVICE_HOST_SOURCE, renderBuildScript, windowsCommandLine } from './windows.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WIN_ENV = { ProgramData: 'C:\\ProgramData', SystemRoot: 'C:\\Windows' };
const SC = 'C:\\Windows\\System32\\sc.exe';
const REG = 'C:\\Windows\\System32\\reg.exe';
const ICACLS = 'C:\\Windows\\System32\\icacls.exe';
const PS = 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe';
const WIN_NODE = 'C:\\Program Files\\nodejs\\node.exe';
const WIN_REPO = 'C:\\jit access\\repo';
/** What install looks for first, as an in-memory file: the agent `npm run build:agent` builds, in a repository. */
const builtAgent = (repoDir: string, p: path.PlatformPath = path.posix) => ({ [p.join(repoDir, 'dist', 'agent', 'main.js')]: '' });

// ---------------------------------------------------------------------------------------------
// test doubles
// ---------------------------------------------------------------------------------------------

interface Recorded {
  /** Every command, in order, as [file, ...argv]. Shared with a recording backend when given. */
  log: string[][];
  run: Runner;
}

/** Records instead of running; `answer` gives a result for some commands (default: exit 0). */
function recorder(answer: (argv: string[]) => Partial<RunResult> | undefined = () => undefined, log: string[][] = []): Recorded {
  const run: Runner = async (file, argv, opts = {}) => {
    log.push([file, ...argv]);
    const result: RunResult = { code: 0, stdout: '', stderr: '', ...answer([file, ...argv]) };
    if (!(opts.okCodes ?? [0]).includes(result.code)) throw new Error(`${file} exited ${result.code}`);
    return result;
  };
  return { log, run };
}

/** An in-memory file system: files with their modes, and folders. */
function memoryFiles(initial: Record<string, string> = {}): ServiceFiles & { files: Map<string, { text: string; mode: number }>; dirs: Set<string> } {
  const files = new Map(Object.entries(initial).map(([k, text]) => [k, { text, mode: 0o600 }]));
  const dirs = new Set<string>();
  return {
    files,
    dirs,
    exists: async (f) => files.has(f) || dirs.has(f),
    read: async (f) => {
      const e = files.get(f);
      if (!e) throw new Error(`ENOENT ${f}`);
      return e.text;
    },
    makePrivateDir: async (d) => void dirs.add(d),
    write: async (f, text, mode) => void files.set(f, { text, mode }),
    remove: async (f) => files.delete(f),
    removeDirIfEmpty: async (d) => void dirs.delete(d),
  };
}

function host(platform: ServicePlatform, over: Partial<ServiceHost> = {}): ServiceHost & { printed: string[] } {
  const printed: string[] = [];
  return {
    platform,
    env: platform === 'win32' ? WIN_ENV : {},
    run: recorder().run,
    files: memoryFiles(),
    isPrivileged: async () => true,
    print: (l) => void printed.push(l),
    backend: async () => fakeBackend([]).backend,
    sleep: async () => {},
    nodePath: platform === 'win32' ? WIN_NODE : process.execPath,
    repoDir: platform === 'win32' ? WIN_REPO : REPO,
    ...over,
    printed,
  };
}

/** A backend holding `names`; logoff/delete are appended to `log` as pseudo-commands. */
function fakeBackend(names: string[], log: string[][] = [], failDelete?: string) {
  const accounts = new Map(names.map((n, i) => [n, { name: n, id: String(5000 + i), enabled: true, managed: true, groups: [] } as AccountInfo]));
  let listed = 0;
  const backend: AccountBackend = {
    os: 'fake',
    lookup: async (n) => accounts.get(n) ?? null,
    createDisabled: async () => {
      throw new Error('not here');
    },
    setGroups: async () => {},
    setEnabled: async () => {},
    setPassword: async () => {},
    logoff: async (n) => {
      log.push(['logoff', n]);
      if (!accounts.has(n)) throw new AccountError('NOT_FOUND', n);
      return { ended: 1 };
    },
    delete: async (n) => {
      log.push(['delete', n]);
      if (n === failDelete) throw new AccountError('LOGGED_IN', `${n} is still logged in`);
      accounts.delete(n);
    },
    listManaged: async () => {
      listed++;
      return [...accounts.values()];
    },
  };
  return { backend, accounts, listed: () => listed };
}

const enrollSpy = () => {
  const calls: string[] = [];
  return { calls, enroll: async (f: string) => void calls.push(f) };
};

function capture(file: string, argv: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

// ---------------------------------------------------------------------------------------------
// parsers for what we render
// ---------------------------------------------------------------------------------------------

/** A unit file: section → key → values (repeated keys keep every value). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      current = new Map();
      sections.set(sec[1]!, current);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(kv && current, `unit line not key=value inside a section: ${line}`);
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  }
  return sections;
}

/** ExecStart's words as systemd splits them: "…" with C escapes, then %% and $$ undone. */
function execWords(value: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < value.length) {
    if (value[i] === ' ') {
      i++;
      continue;
    }
    let w = '';
    if (value[i] === '"') {
      for (i++; value[i] !== '"'; i++) {
        assert.ok(i < value.length, 'unterminated quote');
        if (value[i] === '\\') i++;
        w += value[i];
      }
      i++;
    } else {
      for (; i < value.length && value[i] !== ' '; i++) w += value[i];
    }
    words.push(w.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return words;
}

type PlistValue = string | number | boolean | PlistValue[] | { [k: string]: PlistValue };
type XmlNode = Record<string, unknown>;

/** A parsed plist (fast-xml-parser, preserveOrder) → a JS value. */
function plistValue(node: XmlNode): PlistValue {
  const tag = Object.keys(node).find((k) => k !== ':@')!;
  const kids = ((node[tag] as XmlNode[]) ?? []).filter((k) => !('#text' in k && String(k['#text']).trim() === ''));
  const text = (): string => ((node[tag] as XmlNode[])[0]?.['#text'] as string | undefined) ?? '';
  switch (tag) {
    case 'string':
      return text();
    case 'integer':
      return Number(text());
    case 'true':
      return true;
    case 'false':
      return false;
    case 'array':
      return kids.map(plistValue);
    case 'dict': {
      const out: Record<string, PlistValue> = {};
      for (let i = 0; i < kids.length; i += 2) {
        assert.ok('key' in kids[i]!, 'dict entries alternate key and value');
        out[plistValue({ string: kids[i]!.key }) as string] = plistValue(kids[i + 1]!);
      }
      return out;
    }
    default:
      throw new Error(`unexpected plist element ${tag}`);
  }
}

function parsePlist(xml: string): Record<string, PlistValue> {
  assert.equal(XMLValidator.validate(xml), true, 'well-formed XML');
  const doc = new XMLParser({ preserveOrder: true, ignoreAttributes: false, parseTagValue: false, trimValues: false }).parse(xml) as XmlNode[];
  const plist = doc.find((n) => 'plist' in n)!;
  assert.equal((plist[':@'] as Record<string, string>)['@_version'], '1.0');
  const dict = (plist.plist as XmlNode[]).find((n) => 'dict' in n)!;
  return plistValue(dict) as Record<string, PlistValue>;
}

/** How the Microsoft C runtime splits a command line (what node.exe does with AppParameters). */
function crtSplit(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    let arg = '';
    let quoted = false;
    while (i < line.length) {
      const c = line[i]!;
      if (!quoted && (c === ' ' || c === '\t')) break;
      if (c === '\\') {
        let bs = 0;
        while (line[i] === '\\') (bs++, i++);
        // Backslashes are literal unless a quote follows: then they pair up, an odd one escapes it.
        if (line[i] === '"') {
          arg += '\\'.repeat(bs >> 1);
          if (bs % 2) (arg += '"', i++);
        } else arg += '\\'.repeat(bs);
      } else if (c === '"') {
        quoted = !quoted;
        i++;
      } else {
        arg += c;
        i++;
      }
    }
    args.push(arg);
  }
  return args;
}

// ---------------------------------------------------------------------------------------------
// Linux: systemd
// ---------------------------------------------------------------------------------------------

describe('service: systemd unit', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'jit-unit-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function installedUnit(stateFile: string): Promise<{ text: string; h: ReturnType<typeof host>; rec: Recorded }> {
    const files = memoryFiles(builtAgent(REPO));
    const rec = recorder();
    const h = host('linux', { files, run: rec.run });
    await installAgent({ stateFile, serverUrl: 'https://jit.example', enroll: enrollSpy().enroll }, h);
    const unit = files.files.get('/etc/systemd/system/jit-agent.service');
    assert.ok(unit, 'unit written to /etc/systemd/system (in memory)');
    assert.equal(unit.mode, 0o644);
    return { text: unit.text, h, rec };
  }

  async function verify(text: string): Promise<void> {
    const file = path.join(dir, 'jit-agent.service');
    await writeFile(file, text);
    const r = await capture('/usr/bin/systemd-analyze', ['verify', file], dir);
    const ours = r.stderr.split('\n').filter((l) => l.includes('jit-agent.service'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ours, [], `systemd-analyze complained:\n${r.stderr}`);
  }

  it('passes systemd-analyze verify, and its ExecStart really starts the agent from WorkingDirectory', async () => {
    const stateFile = path.join(dir, 'missing', 'state.json');
    const { text } = await installedUnit(stateFile);
    await verify(text);

    const service = parseUnit(text).get('Service')!;
    const argv = execWords(service.get('ExecStart')![0]!);
    assert.deepEqual(argv, [process.execPath, ...AGENT_NODE_FLAGS, path.join(REPO, 'dist', 'agent', 'main.js'), 'run', '--state', stateFile]);
    assert.deepEqual(service.get('WorkingDirectory'), [REPO]);
    // Why run it: verify only checks that the program exists, not that node takes these flags
    // or that the built agent starts. It gets as far as reading its (missing) state file.
    const r = await capture(argv[0]!, argv.slice(1), service.get('WorkingDirectory')![0]!);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /jit-agent: ENOENT: no such file or directory, open '.*missing\/state\.json'/);
  });

  it('restarts always, runs as root, and only uses hardening that the account tools survive', async () => {
    const stateFile = '/var/lib/jit-agent/state.json';
    const { text } = await installedUnit(stateFile);
    const unit = parseUnit(text);
    const service = unit.get('Service')!;
    const one = (k: string) => service.get(k)?.[0];
    assert.equal(one('Restart'), 'always');
    assert.equal(unit.get('Unit')!.get('StartLimitIntervalSec')?.[0], '0');
    assert.deepEqual(unit.get('Install')!.get('WantedBy'), ['multi-user.target']);
    for (const k of ['User', 'DynamicUser', 'PrivateUsers', 'ProtectHome', 'ProtectProc', 'ProcSubset', 'MemoryDenyWriteExecute', 'PrivateNetwork', 'NoNewPrivileges']) {
      assert.equal(service.get(k), undefined, `${k} would break the agent`);
    }
    assert.equal(one('ProtectSystem'), 'strict');
    const writable = one('ReadWritePaths')!.split(' ');
    for (const p of ['/etc', '/home', '/var/lib/jit-agent']) assert.ok(writable.includes(p), `${p} writable`);
    const caps = one('CapabilityBoundingSet')!.split(' ');
    for (const c of ['CAP_KILL', 'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_AUDIT_WRITE']) assert.ok(caps.includes(c), c);
    assert.match(one('RestrictAddressFamilies')!, /AF_INET6.*AF_NETLINK|AF_NETLINK.*AF_INET6/);
    await verify(text);
  });

  it('quotes paths with spaces, % and $ so that systemd reads them back unchanged', async () => {
    const stateFile = path.join(dir, 'a b', '100% $HOME "x"', 'state.json');
    const argv = [process.execPath, ...AGENT_NODE_FLAGS, path.join(REPO, 'dist', 'agent', 'main.js'), 'run', '--state', stateFile];
    // The quote in the folder is refused for ReadWritePaths; a state file in a folder without it is fine.
    assert.throws(() => renderSystemdUnit({ argv, workingDirectory: REPO, stateFile }), /quote or backslash/);
    const plainDir = path.join(dir, 'a b', '100% $HOME');
    const ok = path.join(plainDir, 'state.json');
    const text = renderSystemdUnit({ argv: [...argv.slice(0, -1), ok], workingDirectory: REPO, stateFile: ok });
    await verify(text);
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

  it('install: makes the state folder private, enrolls, writes the unit, then daemon-reload and enable --now', async () => {
    const files = memoryFiles(builtAgent(REPO));
    const rec = recorder();
    const spy = enrollSpy();
    const h = host('linux', { files, run: rec.run });
    await installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, h);
    assert.deepEqual(spy.calls, ['/var/lib/jit-agent/state.json'], 'default state path');
    assert.ok(files.dirs.has('/var/lib/jit-agent'));
    assert.deepEqual(rec.log, [
      ['systemctl', 'daemon-reload'],
      ['systemctl', 'enable', '--now', 'jit-agent'],
    ]);
    // Every step is announced before it happens.
    assert.match(h.printed.join('\n'), /create \/var\/lib\/jit-agent[^]*enroll with https:\/\/jit\.example[^]*write the systemd unit[^]*\$ systemctl daemon-reload[^]*\$ systemctl enable --now jit-agent/);
    assert.doesNotMatch(h.printed.join('\n'), /token=|TOKEN/);
  });

  it('install on the real file system: folder 0700, unit 0644; a second install keeps the enrollment and restarts', async () => {
    const stateFile = path.join(dir, 'state', 'state.json');
    const unitPath = path.join(dir, 'systemd', 'jit-agent.service');
    const rec = recorder();
    const spy = enrollSpy();
    const enroll = async (f: string) => {
      await spy.enroll(f);
      await writeFile(f, '{}', { mode: 0o600 });
    };
    const h = host('linux', { files: nodeFiles, run: rec.run, definitionPath: unitPath });
    await installAgent({ stateFile, serverUrl: 'https://jit.example', enroll }, h);
    assert.equal((await stat(path.dirname(stateFile))).mode & 0o777, 0o700);
    assert.equal((await stat(unitPath)).mode & 0o777, 0o644);
    assert.match(await readFile(unitPath, 'utf8'), /^ExecStart=.* run --state .*state\.json$/m);

    rec.log.length = 0;
    await installAgent({ stateFile, serverUrl: 'https://jit.example', enroll }, h);
    assert.equal(spy.calls.length, 1, 'an existing state file is never overwritten by a new enrollment');
    assert.match(h.printed.join('\n'), /already enrolled/);
    assert.deepEqual(rec.log, [
      ['systemctl', 'daemon-reload'],
      ['systemctl', 'enable', 'jit-agent'],
      ['systemctl', 'restart', 'jit-agent'],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// macOS: launchd
// ---------------------------------------------------------------------------------------------

describe('service: launchd plist', () => {
  it('is well-formed XML whose keys make a root daemon that starts at boot and is kept alive', async () => {
    const files = memoryFiles(builtAgent('/opt/jit-access'));
    const rec = recorder();
    const h = host('darwin', { files, run: rec.run, nodePath: '/opt/homebrew/bin/node', repoDir: '/opt/jit-access' });
    await installAgent({ serverUrl: 'https://jit.example', enroll: enrollSpy().enroll }, h);
    const plistPath = `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`;
    const written = files.files.get(plistPath)!;
    assert.equal(written.mode, 0o644, 'launchd ignores a group- or world-writable plist');
    const p = parsePlist(written.text);
    const stateFile = '/Library/Application Support/jit-agent/state.json';
    assert.deepEqual(p, {
      Label: 'com.jit-access.agent',
      ProgramArguments: ['/opt/homebrew/bin/node', ...AGENT_NODE_FLAGS, '/opt/jit-access/dist/agent/main.js', 'run', '--state', stateFile],
      WorkingDirectory: '/opt/jit-access',
      RunAtLoad: true,
      KeepAlive: true,
      ThrottleInterval: 10,
      ExitTimeOut: 30,
      StandardOutPath: '/Library/Logs/jit-agent.log',
      StandardErrorPath: '/Library/Logs/jit-agent.log',
    });
    assert.ok(files.dirs.has('/Library/Application Support/jit-agent'));
    assert.deepEqual(rec.log, [
      ['launchctl', 'enable', 'system/com.jit-access.agent'],
      ['launchctl', 'bootstrap', 'system', plistPath],
    ]);
  });

  it('escapes XML specials and refuses control characters', () => {
    const odd = "/Users/x/a & <b> \"c\" 'd'/state.json";
    const p = parsePlist(renderLaunchdPlist({ argv: ['/usr/local/bin/node', 'run', '--state', odd], workingDirectory: '/srv/jit & co' }));
    assert.deepEqual(p.ProgramArguments, ['/usr/local/bin/node', 'run', '--state', odd]);
    assert.equal(p.WorkingDirectory, '/srv/jit & co');
    assert.throws(() => renderLaunchdPlist({ argv: ['/usr/local/bin/node', 'a\u0001b'], workingDirectory: '/x' }), /not allowed/);
  });

  it('a second install boots the loaded daemon out before bootstrapping the new one', async () => {
    const plistPath = `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`;
    const files = memoryFiles({ ...builtAgent(REPO), [plistPath]: 'old', '/Library/Application Support/jit-agent/state.json': '{}' });
    const rec = recorder();
    const spy = enrollSpy();
    await installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, host('darwin', { files, run: rec.run }));
    assert.deepEqual(spy.calls, []);
    assert.deepEqual(rec.log.map((c) => c.slice(0, 2).join(' ')), ['launchctl bootout', 'launchctl enable', 'launchctl bootstrap']);
  });
});

// ---------------------------------------------------------------------------------------------
// Windows: service host + sc.exe
// ---------------------------------------------------------------------------------------------

describe('service: Windows', () => {
  const layoutDir = 'C:\\ProgramData\\jit-agent';
  const hostExe = `${layoutDir}\\jit-agent-service.exe`;
  const buildScript = `${layoutDir}\\build-service-host.ps1`;
  const stateFile = `${layoutDir}\\state.json`;
  const agentArgs = [...AGENT_NODE_FLAGS, `${WIN_REPO}\\dist\\agent\\main.js`, 'run', '--state', stateFile];

  /** sc.exe query answers: absent (1060) until `sc create`, then running until `sc stop`, then stopped. */
  function scm(initially: 'absent' | 'running') {
    let state: 'absent' | 'running' | 'stopping' | 'stopped' = initially;
    return (argv: string[]): Partial<RunResult> | undefined => {
      if (argv[0] !== SC) return undefined;
      if (argv[1] === 'query') {
        if (state === 'absent') return { code: 1060, stdout: 'The specified service does not exist as an installed service.' };
        if (state === 'stopping') {
          state = 'stopped';
          return { stdout: 'SERVICE_NAME: jit-agent\r\n        STATE              : 3  STOP_PENDING\r\n' };
        }
        return { stdout: `SERVICE_NAME: jit-agent\r\n        STATE              : ${state === 'running' ? '4  RUNNING' : '1  STOPPED'}\r\n` };
      }
      if (argv[1] === 'create') state = 'running';
      if (argv[1] === 'stop') state = 'stopping';
      if (argv[1] === 'delete') state = 'absent';
      return undefined;
    };
  }

  it('install: locks the folder, enrolls, compiles the service host, registers it with sc.exe and reg.exe', async () => {
    const files = memoryFiles(builtAgent(WIN_REPO, path.win32));
    const rec = recorder(scm('absent'));
    const spy = enrollSpy();
    await installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, host('win32', { files, run: rec.run }));
    assert.deepEqual(spy.calls, [stateFile]);
    const key = PARAMETERS_KEY;
    assert.deepEqual(rec.log, [
      [ICACLS, layoutDir, '/setowner', '*S-1-5-32-544', '/T'],
      [ICACLS, layoutDir, '/inheritance:r', '/grant:r', '*S-1-5-18:(OI)(CI)F', '*S-1-5-32-544:(OI)(CI)F', '/T'],
      [SC, 'query', 'jit-agent'],
      [PS, '-NoLogo', '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', buildScript],
      [SC, 'create', 'jit-agent', 'binPath=', `"${hostExe}"`, 'start=', 'auto', 'DisplayName=', 'jit-access agent'],
      [REG, 'add', key, '/v', 'Application', '/t', 'REG_SZ', '/d', WIN_NODE, '/f'],
      [REG, 'add', key, '/v', 'AppParameters', '/t', 'REG_SZ', '/d', windowsCommandLine(agentArgs), '/f'],
      [REG, 'add', key, '/v', 'AppDirectory', '/t', 'REG_SZ', '/d', WIN_REPO, '/f'],
      [REG, 'add', key, '/v', 'AppLog', '/t', 'REG_SZ', '/d', `${layoutDir}\\agent.log`, '/f'],
      [SC, 'description', 'jit-agent', 'Creates, enables and deletes the temporary local accounts of jit-access grants.'],
      [SC, 'failure', 'jit-agent', 'reset=', '86400', 'actions=', 'restart/5000/restart/5000/restart/30000'],
      [SC, 'failureflag', 'jit-agent', '1'],
      [SC, 'start', 'jit-agent'],
    ]);
    // node.exe gets back exactly the arguments the agent needs.
    assert.deepEqual(crtSplit(windowsCommandLine(agentArgs)), agentArgs);

    const script = files.files.get(buildScript)!.text;
    assert.ok(script.startsWith('\uFEFF'), 'UTF-8 BOM, so Windows PowerShell 5.1 does not read it as ANSI');
    const parsed = await parsePowerShell(script.slice(1));
    assert.equal(parsed.ok, true, parsed.errors.join('\n'));
    assert.ok(parsed.literals.some((l) => l.kind === 'verbatim' && l.text === `'${hostExe}'`), 'the output path is a verbatim literal');
    assert.ok(parsed.literals.some((l) => l.kind === 'verbatim-here' && l.text.includes('class JitAgentServiceHost : ServiceBase')));
    assert.match(script, /Add-Type -TypeDefinition \$Source -Language CSharp -ReferencedAssemblies 'System\.ServiceProcess' -OutputAssembly \$OutFile -OutputType ConsoleApplication/);
  });

  it('a second install stops the running service and reconfigures it instead of creating it', async () => {
    const files = memoryFiles({ ...builtAgent(WIN_REPO, path.win32), [stateFile]: '{}' });
    const rec = recorder(scm('running'));
    const spy = enrollSpy();
    await installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, host('win32', { files, run: rec.run }));
    assert.deepEqual(spy.calls, []);
    const sc = rec.log.filter((c) => c[0] === SC).map((c) => c[1]);
    assert.deepEqual(sc, ['query', 'stop', 'query', 'query', 'config', 'description', 'failure', 'failureflag', 'start']);
    const stopAt = rec.log.findIndex((c) => c[1] === 'stop');
    const buildAt = rec.log.findIndex((c) => c[0] === PS);
    assert.ok(stopAt < buildAt, 'the host exe is rebuilt only once the service no longer runs it');
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

  it('uninstall: accounts first, then sc stop, wait, sc delete, and the host files', async () => {
    const files = memoryFiles({ [stateFile]: '{}', [`${stateFile}.key`]: 'k', [hostExe]: 'MZ', [buildScript]: 'x' });
    const log: string[][] = [];
    const rec = recorder(scm('running'), log);
    const fake = fakeBackend(['jt1', 'jt2'], log);
    await uninstallAgent({}, host('win32', { files, run: rec.run, backend: async () => fake.backend }));
    const steps = log.map((c) => (c[0] === SC ? `sc ${c[1]}` : `${c[0]} ${c[1]}`));
    assert.deepEqual(steps, ['logoff jt1', 'delete jt1', 'logoff jt2', 'delete jt2', 'sc query', 'sc stop', 'sc query', 'sc query', 'sc delete']);
    assert.equal(fake.listed(), 2, 'accounts are listed again after the stop');
    for (const f of [stateFile, `${stateFile}.key`, hostExe, buildScript]) assert.equal(files.files.has(f), false, `${f} removed`);
  });
});

// ---------------------------------------------------------------------------------------------
// uninstall (Linux, real sandboxed accounts) and refusals
// ---------------------------------------------------------------------------------------------

describe('service: uninstall', () => {
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

  it('deletes every managed account before stopping the service, then removes unit, state and key', async () => {
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

    const rec = recorder(undefined, log);
    const roots: (string | undefined)[] = [];
    const h = host('linux', {
      files: nodeFiles,
      run: rec.run,
      definitionPath: unitPath,
      backend: async (root) => (roots.push(root), backend),
    });
    await uninstallAgent({ stateFile }, h);

    assert.deepEqual(roots, [sandbox.root], 'the backend works on the state file\'s sandbox root');
    const passwd = await readFile(path.join(sandbox.root, 'etc', 'passwd'), 'utf8');
    assert.doesNotMatch(passwd, /jtuninst/);
    assert.deepEqual(await backend.listManaged(), []);

    const names = log.map((c) => c.join(' '));
    const deletes = names.flatMap((c, i) => (/^userdel .* -- jtuninst[12]$/.test(c) ? [i] : []));
    const stopAt = names.indexOf('systemctl disable --now jit-agent');
    assert.equal(deletes.length, 2, names.join('\n'));
    assert.ok(stopAt > Math.max(...deletes), `accounts removed before the service stops:\n${names.join('\n')}`);
    assert.deepEqual(rec.log.filter((c) => c[0] === 'systemctl'), [
      ['systemctl', 'disable', '--now', 'jit-agent'],
      ['systemctl', 'daemon-reload'],
    ]);
    for (const f of [unitPath, stateFile, `${stateFile}.key`, path.dirname(stateFile)]) {
      await assert.rejects(stat(f), { code: 'ENOENT' }, `${f} removed`);
    }
    const out = h.printed.join('\n');
    assert.match(out, /log off and delete managed account jtuninst1 \(uid \d+\)[^]*jtuninst2[^]*\$ systemctl disable --now jit-agent/);
  });

  it('stops before touching the service when an account cannot be removed', async () => {
    const files = memoryFiles({ '/var/lib/jit-agent/state.json': '{}', '/etc/systemd/system/jit-agent.service': 'x' });
    const log: string[][] = [];
    const rec = recorder(undefined, log);
    const fake = fakeBackend(['jta', 'jtb'], log, 'jta');
    await assert.rejects(uninstallAgent({}, host('linux', { files, run: rec.run, backend: async () => fake.backend })), /could not remove 1 managed account\(s\)[^]*jta: jta is still logged in/);
    assert.deepEqual(rec.log.filter((c) => c[0] === 'systemctl'), [], 'service left running');
    assert.ok(files.files.has('/etc/systemd/system/jit-agent.service') && files.files.has('/var/lib/jit-agent/state.json'));
    assert.deepEqual([...fake.accounts.keys()], ['jta'], 'the other account was still removed');
  });

  it('catches an account created between the first pass and the stop', async () => {
    const files = memoryFiles({ '/etc/systemd/system/jit-agent.service': 'x' });
    const fake = fakeBackend(['jt1']);
    const rec = recorder((argv) => {
      // The agent creates one more account just before systemctl stops it.
      if (argv[1] === 'disable') fake.accounts.set('jtlate', { name: 'jtlate', id: '5009', enabled: false, managed: true, groups: [] });
      return undefined;
    });
    await uninstallAgent({}, host('linux', { files, run: rec.run, backend: async () => fake.backend }));
    assert.deepEqual([...fake.accounts.keys()], []);
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

  it('install refuses without the built agent, before doing anything', async () => {
    const files = memoryFiles();
    const rec = recorder();
    const spy = enrollSpy();
    const h = host('linux', { files, run: rec.run });
    const missing = path.join(REPO, 'dist', 'agent', 'main.js');
    await assert.rejects(installAgent({ serverUrl: 'https://jit.example', enroll: spy.enroll }, h), { message: `${missing} is missing: run npm ci (or npm run build:agent) first` });
    assert.deepEqual([rec.log, spy.calls, h.printed, files.files.size, files.dirs.size], [[], [], [], 0, 0]);
  });

  it('--dry-run prints every step and changes nothing', async () => {
    const files = memoryFiles({ '/var/lib/jit-agent/state.json': '{}', '/etc/systemd/system/jit-agent.service': 'x' });
    const rec = recorder();
    const spy = enrollSpy();
    const fake = fakeBackend(['jt1', 'jt2']);
    const h = host('linux', { files, run: rec.run, backend: async () => fake.backend });
    await uninstallAgent({ dryRun: true }, h);
    await installAgent({ dryRun: true, serverUrl: 'https://jit.example', enroll: spy.enroll }, { ...h, files: memoryFiles(builtAgent(REPO)) });
    assert.deepEqual([rec.log, spy.calls, [...fake.accounts.keys()]], [[], [], ['jt1', 'jt2']]);
    assert.equal(files.files.size, 2);
    const out = h.printed.join('\n');
    for (const step of [
      /uninstall: \[dry run\] would log off and delete managed account jt1/,
      /uninstall: \[dry run\] would \$ systemctl disable --now jit-agent/,
      /uninstall: \[dry run\] would delete \/var\/lib\/jit-agent\/state\.json\.key/,
      /install: \[dry run\] would enroll with https:\/\/jit\.example/,
      /install: \[dry run\] would write the systemd unit \/etc\/systemd\/system\/jit-agent\.service/,
      /install: \[dry run\] would \$ systemctl enable --now jit-agent/,
    ]) assert.match(out, step);
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
