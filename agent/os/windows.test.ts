/**
 * WindowsBackend without Windows: every script goes to a RECORDING executor, which keeps the
 * script, argv and stdin of each call apart and answers from a small in-memory model of a
 * Windows machine (test/support/windowsSim.ts: users, the three well-known groups, sessions,
 * processes, profiles, scheduled tasks, files). The removal steps (disable, logoff, delete,
 * purge) and the password flags have their own file, windows-removal.test.ts.
 *
 * What this proves: our script texts (each one parsed by a PowerShell grammar, values only as
 * single-quoted literals, bodies constant), our parsing of their output, our error mapping and
 * our password path. What it cannot prove: that Windows behaves as the model does; the model
 * only answers each operation the way the documentation says Windows would.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parsePowerShell, readVerbatimString } from '../../test/support/psParse.ts';
import { splitScript, WindowsModel } from '../../test/support/windowsSim.ts';
import { RecordingExecutor, spec, verifyRecording, windowsEnv } from '../../test/support/windowsSimExec.ts';
import { AccountError } from './backend.ts';
import { accountBackendContract, inAnHour, newName, newPassword, rejectsWith } from './contract.ts';
import { descriptionFor, helperArgv, mapPsError, NodePowerShellExecutor, pwshPath, windowsPowerShellPath, WindowsBackend, type PsResult } from './windows.ts';
import {
  assertTransportSafe,
  constantPart,
  MARKER,
  OP_BODY,
  OP_PARAMS,
  passwordHelperText,
  psInt,
  psQuote,
  RESULT_PREFIX,
  sessionScript,
  type Op,
} from './windows-scripts.ts';

// ---------------------------------------------------------------------------------------------
// The shared contract
// ---------------------------------------------------------------------------------------------

accountBackendContract('windows (recorded PowerShell, simulated Windows)', async () => {
  const env = windowsEnv();
  return {
    backend: env.backend,
    spawnAs: async (sid: string) => env.model.spawn(sid),
    createUnmanaged: async (name: string) => void env.model.addUser(name, 'Built-in account for administering the computer'),
    cleanup: () => verifyRecording(env.exec),
  };
});

// ---------------------------------------------------------------------------------------------
// Windows specifics
// ---------------------------------------------------------------------------------------------

describe('WindowsBackend (recorded)', function () {
  it('runs the whole lifecycle with scripts that all parse, and records what each step sends', async () => {
    const { exec, backend, model, sleeps } = windowsEnv();
    const name = newName();
    const info = await backend.createDisabled(spec(name, 'grant-1', 'Users'), newPassword());
    assert.deepEqual(info.groups, ['Users']);
    assert.match(info.id, /^S-1-5-21-/);
    await backend.setGroups(name, 'Power Users');
    await backend.setPassword(name, newPassword());
    await backend.enable(name, new Date('2030-01-02T03:04:05.678Z'));
    assert.equal(model.find(name)?.expiresMs, Date.parse('2030-01-02T03:04:05.678Z'));
    const proc = model.spawn(info.id);
    await backend.disable(name);
    assert.deepEqual(await backend.logoff(name), { ended: 1 }); // one session, whose logoff ends its process
    assert.equal(proc.alive(), false);
    await backend.delete(name);
    assert.equal(model.find(name), undefined);
    assert.equal(model.profiles.get(info.id)?.folder, true, 'the profile is purge\'s');
    await backend.purge({ name, id: info.id });
    assert.deepEqual(sleeps, [1000], 'one retry while the profile was still loaded');
    assert.equal(model.profiles.has(info.id), false);

    assert.deepEqual(
      exec.calls.map((c) => (c.kind === 'session' ? c.op : 'helper')),
      ['installHelper', 'create', 'helper', 'lookup', 'setGroups', 'helper', 'enable', 'disable', 'logoff', 'delete', 'purge', 'purge'],
    );
    await verifyRecording(exec);
  });

  it('builds every operation from a constant body: only the prelude changes with the values, and every one parses', async () => {
    const sample = (v: string, n: number) => ({ Name: v, Description: v, ExpiresMs: n, GroupSid: v, Sid: v, Dir: v, File: v, Lines: [v, v], AtMs: n, Execute: v, Arguments: v, HelperPath: v, HelperHash: v, Account: v, Action: v, GroupSids: [v, v], User: v, Domain: v, Grant: v });
    for (const op of Object.keys(OP_BODY) as Op[]) {
      const pick = (all: ReturnType<typeof sample>) => Object.fromEntries(OP_PARAMS[op].map((k) => [k, all[k as keyof typeof all]]));
      const a = splitScript(sessionScript(op, pick(sample('jtaaaa', 1))));
      const hostile = sessionScript(op, pick(sample(`x'$(calc)\`"`, 2)));
      const b = splitScript(hostile);
      assert.deepEqual(a.rest, b.rest, op);
      assert.deepEqual(a.rest, constantPart(op), op);
      const tree = await parsePowerShell(hostile);
      assert.ok(tree.ok, `${op}: ${tree.errors.join('; ')}`);
      assert.ok(tree.literals.every((l) => l.kind === 'verbatim' || l.text === '"`r`n"'), `${op}: an expandable string`);
    }
    const helper = await parsePowerShell(passwordHelperText());
    assert.ok(helper.ok, helper.errors.join('; '));
    assert.throws(() => sessionScript('lookup', {}), /parameters must be Name/);
    assert.throws(() => sessionScript('lookup', { Name: 'a', Extra: 'b' }), /parameters must be Name/);
  });

  it('rejects hostile names with INVALID_NAME before running anything', async () => {
    const { exec, backend } = windowsEnv();
    for (const name of [`a$(calc)`, 'a`b', "a'b", 'a\u2019b', 'a"b', 'a\nb', 'a*', 'a[1]', 'Admin', 'a'.repeat(21), '']) {
      await rejectsWith(backend.lookup(name), 'INVALID_NAME');
      await rejectsWith(backend.createDisabled(spec(name), newPassword()), 'INVALID_NAME');
      await rejectsWith(backend.delete(name), 'INVALID_NAME');
      await rejectsWith(backend.setPassword(name, newPassword()), 'INVALID_NAME');
    }
    assert.deepEqual(exec.calls, []);
  });

  describe('grant ids and descriptions', () => {
    const hostile = [
      `g'; Remove-Item C:\\ -Recurse; '`,
      'g$(Invoke-Expression x)',
      'g`$x`',
      'g"$(whoami)"',
      "g''''",
      "g'+(iex 'calc')+'",
      'g@(1)|%{$_}',
      'g${env:PATH}',
      "g#<comment>'",
    ];
    for (const grantId of hostile) {
      it(`quotes the grant id ${JSON.stringify(grantId)} into a single literal`, async () => {
        const { exec, backend, model } = windowsEnv();
        const name = newName();
        await backend.createDisabled(spec(name, grantId), newPassword());
        const description = MARKER + grantId;
        assert.equal(model.find(name)?.description, description, 'Windows got the exact text');
        const script = exec.sessionCalls('create')[0]!.script;
        const quoted = psQuote(description);
        assert.ok(script.includes(`$Description = ${quoted}\n`), 'the quoted form is in the script');
        const tree = await parsePowerShell(script);
        assert.ok(tree.ok, tree.errors.join('; '));
        // Every literal, read with PowerShell's quote rule: exactly one holds the grant id.
        const lit = tree.literals.filter((l) => readVerbatimString(script, l.start)?.value.includes(grantId));
        assert.equal(lit.length, 1, 'exactly one literal holds the value');
        assert.equal(lit[0]!.kind, 'verbatim');
        assert.equal(lit[0]!.text, quoted);
        // And PowerShell's own quote rule reads the same single literal, back to the value.
        assert.deepEqual(readVerbatimString(script, lit[0]!.start), { value: description, end: lit[0]!.end });
        assert.deepEqual((await backend.listManaged()).map((i) => i.name), [name]);
        await verifyRecording(exec);
      });
    }

    it('refuses grant ids the ASCII-only transport cannot carry, running nothing', async () => {
      const { exec, backend } = windowsEnv();
      for (const grantId of ['', 'g\nh', 'g\rh', 'g\0h', 'g\th', 'g\u2019h', 'g\u2018h', 'g\u201ah', 'g\u201bh', 'gü', 'g\u2028h']) {
        await rejectsWith(backend.createDisabled(spec(newName(), grantId), newPassword()), 'COMMAND_FAILED');
      }
      assert.deepEqual(exec.calls, []);
    });

    it('cuts a UUID grant id so that the description keeps to 48 characters', async () => {
      const { backend, model } = windowsEnv();
      const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e';
      const name = newName();
      await backend.createDisabled(spec(name, uuid), newPassword());
      assert.equal(model.find(name)?.description, 'jit-access grant=0f8fad5b-d9cb-469f-a165-7086772');
      assert.equal(descriptionFor(uuid).length, 48);
      assert.equal((await backend.lookup(name))?.managed, true);
    });
  });

  describe('passwords', () => {
    it('sends each password only on the helper stdin: never in a script, argv or output', async () => {
      const { exec, backend, model } = windowsEnv();
      const name = newName();
      const [first, second] = [newPassword(), newPassword()];
      await backend.createDisabled(spec(name), first);
      assert.equal(model.find(name)?.password, first);
      await backend.setPassword(name, second);
      assert.equal(model.find(name)?.password, second);
      await backend.enable(name, inAnHour());
      await backend.delete(name);

      const files = exec.fileCalls();
      assert.equal(files.length, 2);
      for (const [i, pw] of [first, second].entries()) {
        assert.equal(files[i]!.stdin, `${pw}\r\n`);
        assert.deepEqual(files[i]!.args, ['-Name', name]);
        assert.deepEqual(files[i]!.argv.slice(1), ['-NoLogo', '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', backend.helperPath, '-Name', name]);
        const elsewhere = exec.calls.flatMap((c) => (c.kind === 'session' ? [c.script] : [c.script, ...c.argv]));
        assert.ok(elsewhere.every((t) => !t.includes(pw)));
        assert.equal(exec.calls.filter((c) => c.kind === 'file' && c.stdin.includes(pw)).length, 1);
      }
      // The helper installed is the one we wrote, in the directory we chose.
      assert.equal(model.files.get(backend.helperPath.toLowerCase()), passwordHelperText());
      await verifyRecording(exec);
    });

    it('refuses passwords stdin cannot carry intact, running nothing', async () => {
      const { exec, backend } = windowsEnv();
      for (const pw of ['', 'a\nb', 'a\rb', 'a\0b', 'pässwort', 'x'.repeat(128)]) {
        await rejectsWith(backend.createDisabled(spec(newName()), pw), 'COMMAND_FAILED');
        await rejectsWith(backend.setPassword(newName(), pw), 'COMMAND_FAILED');
      }
      assert.deepEqual(exec.calls, []);
    });

    it('deletes the new account when the password step fails, and reinstalls the helper next time', async () => {
      const { exec, backend, model } = windowsEnv();
      const name = newName();
      exec.reply('helper', { exitCode: 1, stderr: 'File C:\\Program Files\\jit-access\\ps\\jit-set-password.ps1 cannot be loaded.' });
      await rejectsWith(backend.createDisabled(spec(name), newPassword()), 'COMMAND_FAILED');
      assert.equal(model.find(name), undefined);
      await backend.createDisabled(spec(name), newPassword());
      assert.equal(exec.sessionCalls('installHelper').length, 2);
    });

    it('passes helper refusals through and keeps a password out of error messages', async () => {
      const { exec, backend } = windowsEnv();
      const name = newName();
      await backend.createDisabled(spec(name), newPassword());
      const pw = newPassword();
      exec.reply('helper', { exitCode: 1, stderr: `+ ${pw}\r\n+ ~~~\r\n` });
      await assert.rejects(backend.setPassword(name, pw), (e: unknown) => e instanceof AccountError && !e.message.includes(pw) && e.message.includes('***'));
      exec.replyJson('helper', { ok: false, error: { type: 'Microsoft.PowerShell.Commands.InvalidPasswordException', fqid: 'InvalidPassword,Microsoft.PowerShell.Commands.SetLocalUserCommand', message: 'The password does not meet the password policy requirements.' } });
      await rejectsWith(backend.setPassword(name, newPassword()), 'COMMAND_FAILED');
      const other = newName();
      exec.model.addUser(other, 'not ours');
      await rejectsWith(backend.setPassword(other, newPassword()), 'NOT_MANAGED');
      await rejectsWith(backend.setPassword(newName(), newPassword()), 'NOT_FOUND');
    });
  });

  describe('errors', () => {
    const err = (type: string, fqid: string, extra: Record<string, unknown> = {}) => ({ type, fqid, message: 'localized text', ...extra });

    it('maps PowerShell error records to AccountError codes', () => {
      const table: [ReturnType<typeof err>, string][] = [
        [err('Microsoft.PowerShell.Commands.UserExistsException', 'UserExists,Microsoft.PowerShell.Commands.NewLocalUserCommand'), 'ALREADY_EXISTS'],
        [err('Microsoft.PowerShell.Commands.NameInUseException', 'NameInUse,Microsoft.PowerShell.Commands.NewLocalUserCommand'), 'ALREADY_EXISTS'],
        [err('System.Management.Automation.ActionPreferenceStopException', 'UserExists,Microsoft.PowerShell.Commands.NewLocalUserCommand'), 'ALREADY_EXISTS'],
        [err('Microsoft.PowerShell.Commands.UserNotFoundException', 'UserNotFound,Microsoft.PowerShell.Commands.EnableLocalUserCommand'), 'NOT_FOUND'],
        [err('Microsoft.PowerShell.Commands.PrincipalNotFoundException', 'PrincipalNotFound,Microsoft.PowerShell.Commands.AddLocalGroupMemberCommand'), 'NOT_FOUND'],
        [err('Microsoft.PowerShell.Commands.GroupNotFoundException', 'GroupNotFound,Microsoft.PowerShell.Commands.AddLocalGroupMemberCommand'), 'UNSUPPORTED_GROUP'],
        [err('Microsoft.PowerShell.Commands.AccessDeniedException', 'AccessDenied,Microsoft.PowerShell.Commands.NewLocalUserCommand'), 'ACCESS_DENIED'],
        [err('System.UnauthorizedAccessException', 'System.UnauthorizedAccessException,Microsoft.PowerShell.Commands.SetAclCommand'), 'ACCESS_DENIED'],
        [err('Microsoft.Management.Infrastructure.CimException', 'HRESULT 0x80041003,Microsoft.Management.Infrastructure.CimCmdlets.RemoveCimInstanceCommand', { native: 'AccessDenied' }), 'ACCESS_DENIED'],
        [err('System.ComponentModel.Win32Exception', 'x', { hresult: 0x80070005 | 0 }), 'ACCESS_DENIED'],
        [err('x', 'y', { category: 'PermissionDenied' }), 'ACCESS_DENIED'],
        [err('Microsoft.Management.Infrastructure.CimException', 'HRESULT 0x80070020,Microsoft.Management.Infrastructure.CimCmdlets.RemoveCimInstanceCommand', { hresult: 0x80070020 | 0 }), 'LOGGED_IN'],
        [{ type: 'System.IO.IOException', fqid: 'x', message: 'The process cannot access the file because it is being used by another process.' }, 'LOGGED_IN'],
        [err('Microsoft.PowerShell.Commands.InvalidNameException', 'InvalidName,Microsoft.PowerShell.Commands.NewLocalUserCommand'), 'INVALID_NAME'],
        [err('Microsoft.PowerShell.Commands.InternalException', 'Internal,Microsoft.PowerShell.Commands.NewLocalUserCommand'), 'COMMAND_FAILED'],
        [{ type: null, fqid: null, message: null } as never, 'COMMAND_FAILED'],
      ];
      for (const [e, code] of table) assert.equal(mapPsError(e), code, JSON.stringify(e));
    });

    it('turns error records, missing results and malformed output into AccountErrors', async () => {
      const { exec, backend } = windowsEnv();
      const name = newName();
      exec.replyJson('create', { ok: false, error: err('Microsoft.PowerShell.Commands.UserExistsException', 'UserExists,Microsoft.PowerShell.Commands.NewLocalUserCommand') });
      await rejectsWith(backend.createDisabled(spec(name), newPassword()), 'ALREADY_EXISTS');
      exec.replyJson('lookup', { ok: false, error: err('Microsoft.PowerShell.Commands.AccessDeniedException', 'AccessDenied,Microsoft.PowerShell.Commands.GetLocalUserCommand') });
      await rejectsWith(backend.lookup(name), 'ACCESS_DENIED');
      exec.reply('lookup', { stdout: '', stderr: 'Get-LocalUser : The term is not recognized\r\nmore' });
      await assert.rejects(backend.lookup(name), (e: unknown) => e instanceof AccountError && e.code === 'COMMAND_FAILED' && /not recognized$/.test(e.message));
      exec.reply('lookup', { stdout: `${RESULT_PREFIX}{not json` });
      await rejectsWith(backend.lookup(name), 'COMMAND_FAILED');
      exec.replyJson('lookup', { ok: true, user: { name, sid: 'not-a-sid', enabled: true, description: '', groups: [] } });
      await rejectsWith(backend.lookup(name), 'COMMAND_FAILED');
      // A pass that leaves something is repeated; what is still left after the last one is an error.
      const created = newName();
      await backend.createDisabled(spec(created), newPassword());
      for (let i = 0; i < 6; i++) exec.replyJson('logoff', { ok: true, sessions: 0, processes: 1, sessionsLeft: { id: 7, error: 5 }, processesLeft: 2 });
      await assert.rejects(backend.logoff(created), (e: unknown) => e instanceof AccountError && e.code === 'COMMAND_FAILED' && /session 7 \(WTSLogoffSession error 5\), 2 process\(es\) still running$/.test(e.message));
      exec.replyJson('logoff', { ok: true, sessions: 1, sessionsFailed: 0, processes: 2, failed: 1 }); // the old one-pass shape
      await rejectsWith(backend.logoff(created), 'COMMAND_FAILED');
      exec.replyJson('enable', { ok: true, enabled: false });
      await rejectsWith(backend.enable(name, inAnHour()), 'COMMAND_FAILED');
      await rejectsWith(backend.enable(name, undefined as unknown as Date), 'COMMAND_FAILED'); // no expiresAt: no backstop
    });

    it('reads the list shapes of Windows PowerShell 5.1 ConvertTo-Json', async () => {
      const { exec, backend } = windowsEnv();
      const user = (groups: unknown) => ({ name: 'jtx', sid: 'S-1-5-21-1-2-3-1001', enabled: false, description: `${MARKER}g`, groups });
      for (const [groups, want] of [
        ['Administrators', ['Administrators']],
        [null, []],
        [{ value: ['Users', 'Power Users'], Count: 2 }, ['Power Users', 'Users']],
        [['Users', 'Gäste'], ['Users']],
      ] as const) {
        exec.replyJson('lookup', { ok: true, user: user(groups) });
        assert.deepEqual((await backend.lookup('jtx'))?.groups, want);
      }
      exec.replyJson('list', { ok: true, users: user([]) });
      assert.deepEqual((await backend.listManaged()).map((i) => i.name), ['jtx']);
      exec.replyJson('list', { ok: true, users: null });
      assert.deepEqual(await backend.listManaged(), []);
    });

    it('refuses a helper whose installed content is not ours', async () => {
      const { exec, backend } = windowsEnv();
      exec.replyJson('installHelper', { ok: true, path: backend.helperPath, sha256: '00'.repeat(32) });
      await rejectsWith(backend.createDisabled(spec(newName()), newPassword()), 'COMMAND_FAILED');
      assert.equal(exec.sessionCalls('create').length, 0, 'nothing created without a trusted helper');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Quoting and the syntax check itself
// ---------------------------------------------------------------------------------------------

describe('psQuote and the PowerShell syntax check', () => {
  const values = ["it's", 'a\u2018b\u2019c\u201ad\u201be', "''", '$(Remove-Item C:\\)', '`n`$x', '"double"', '\u201cq\u201d', '@\'here\'@', '#', ';|&', ''];

  it('makes one literal of every value, by PowerShell\'s quote rule and by the grammar', async () => {
    for (const v of values) {
      const q = psQuote(v);
      assert.deepEqual(readVerbatimString(q, 0), { value: v, end: q.length }, v);
      const tree = await parsePowerShell(`$x = ${q}`);
      assert.ok(tree.ok, `${v}: ${tree.errors.join('; ')}`);
      assert.deepEqual(tree.literals.map((l) => [l.kind, l.text]), [['verbatim', q]], v);
    }
  });

  it('catches quoting that forgets the typographic single quotes', () => {
    // tree-sitter-powershell ends '…' only at ASCII ', PowerShell also at U+2018–U+201B:
    // the reference reader sees such a literal end early.
    const naive = (s: string) => `'${s.replace(/'/g, "''")}'`;
    const q = naive('a\u2019; calc; \u2019b');
    assert.notEqual(readVerbatimString(q, 0)?.end, q.length);
  });

  it('refuses what cannot be a literal on the line-based transport', () => {
    for (const v of ['a\nb', 'a\rb', 'a\0b', 'a\u2028b', 'a\u0085b', '\ud800']) assert.throws(() => psQuote(v), /control characters/);
    assert.throws(() => psInt(1.5));
    assert.throws(() => psInt(Number.MAX_SAFE_INTEGER + 1));
    assert.throws(() => assertTransportSafe('& {\n\n}'), /blank/);
    assert.throws(() => assertTransportSafe("& {\n$x = 'é'\n}"), /ASCII/);
    assert.throws(() => assertTransportSafe('& {\n  \n}'), /blank/);
  });

  it('flags broken scripts, so the parse check can fail', async () => {
    const good = sessionScript('lookup', { Name: 'jtabc' });
    assert.ok((await parsePowerShell(good)).ok);
    const broken = [
      good.replace(/\n\}$/, ''), // a missing closing brace
      good.replace("$Name = 'jtabc'", "$Name = 'jtabc"), // an unterminated string
      good.replace('$u = Find-JitUser $Name', '$u = 1 +* 2'),
      '& {\nif ($x) { 1 \n}',
      'try { 1 } catch [',
    ];
    for (const src of broken) {
      const r = await parsePowerShell(src);
      assert.equal(r.ok, false, src.slice(-40));
      assert.ok(r.errors.length > 0);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The real executor, against a fake powershell
// ---------------------------------------------------------------------------------------------

/**
 * A stand-in for powershell.exe that speaks node-powershell's framing and keeps the one rule
 * of `-Command -` that matters here: a statement spanning lines runs only after an empty line
 * [PowerShell#3223]; until then every line, the framing ones included, is part of it.
 */
const FAKE_POWERSHELL = `
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import readline from 'node:readline';
const sha = (s) => createHash('sha256').update(s).digest('hex');
const log = process.env.FAKE_PS_LOG;
if (process.argv.includes('-File')) {
  let input = '';
  process.stdin.on('data', (d) => (input += d));
  process.stdin.on('end', () => {
    process.stdout.write('jit-result ' + JSON.stringify({ ok: true, argv: process.argv.slice(2), stdinSha: sha(input) }) + '\\r\\n');
  });
} else {
  if (log) appendFileSync(log, process.pid + '\\n');
  let buf = [];
  let hung = false;
  const run = (script) => {
    if (script.includes('# fake:die')) process.exit(3);
    if (script.includes('# fake:hang')) return void (hung = true); // a busy REPL reads no further
    if (script.includes('# fake:stderr')) process.stderr.write('WARNING: something\\n');
    process.stdout.write('stray line\\njit-result ' + JSON.stringify({ ok: true, sha: sha(script) }) + '\\n');
  };
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (hung) return;
    const frame = /^\\[Console\\]::(Out|Error)\\.WriteLine\\("([^"]*)"\\)$/.exec(line);
    if (buf.length === 0 && frame) return void (frame[1] === 'Out' ? process.stdout : process.stderr).write(frame[2] + '\\n');
    if (line.trim() === '') {
      if (buf.length) run(buf.join('\\n'));
      buf = [];
      return;
    }
    if (buf.length === 0 && !line.startsWith('& {')) return run(line);
    buf.push(line);
  });
}
`;

describe('NodePowerShellExecutor (fake powershell)', function () {
  let dir: string;
  let fake: string;
  let log: string;
  const executors: NodePowerShellExecutor[] = [];
  const make = (opts: { invocationTimeoutMs?: number } = {}) => {
    const e = new NodePowerShellExecutor({ executable: fake, helperExecutable: fake, ...opts });
    executors.push(e);
    return e;
  };
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const resultOf = (r: PsResult) => JSON.parse(r.stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX))!.slice(RESULT_PREFIX.length));
  const pids = async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean).map(Number);

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-fake-ps-'));
    fake = path.join(dir, 'fake-powershell.mjs');
    log = path.join(dir, 'pids');
    await writeFile(fake, `#!${process.execPath}\n${FAKE_POWERSHELL}`);
    await chmod(fake, 0o755);
    process.env.FAKE_PS_LOG = log;
  });
  afterEach(async () => {
    for (const e of executors.splice(0)) await e.dispose();
    await rm(log, { force: true });
  });
  after(async () => {
    delete process.env.FAKE_PS_LOG;
    await rm(dir, { recursive: true, force: true });
  });

  it('runs multi-line scripts in one long-lived session and keeps no history', async () => {
    const e = make();
    const script = sessionScript('lookup', { Name: 'jtabc' });
    for (let i = 0; i < 3; i++) {
      const r = await e.invoke(script);
      assert.equal(resultOf(r).sha, sha(script), 'the script arrived whole, ended by the blank line');
      assert.equal(r.hadErrors, false);
      assert.equal(e.historyLength, 0);
    }
    assert.equal(e.started, 1);
    assert.equal((await pids()).length, 1);
    const warned = await e.invoke('& {\n# fake:stderr\n}');
    assert.equal(warned.hadErrors, true);
    assert.equal(resultOf(warned).ok, true);
  });

  it('starts a new shell after one died mid-command or while idle, without unhandled rejections', async () => {
    const rejections: unknown[] = [];
    const onRejection = (r: unknown) => void rejections.push(r);
    process.on('unhandledRejection', onRejection);
    try {
      const e = make();
      await e.invoke('& {\n# ok\n}');
      await rejectsWith(e.invoke('& {\n# fake:die\n}'), 'COMMAND_FAILED');
      await e.invoke('& {\n# ok\n}');
      assert.equal(e.started, 2);
      // Killed while idle.
      const [, second] = await pids();
      process.kill(second!, 'SIGKILL');
      for (let i = 0; e.isAlive; i++) {
        assert.ok(i < 200, 'the executor did not notice the dead shell');
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(resultOf(await e.invoke('& {\n# ok again\n}')).ok, true);
      assert.equal(e.started, 3);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(rejections, []);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
  });

  it('gives up a command that times out and continues in a new shell', async () => {
    // Long enough for a new fake shell (a node process) to start and answer on a loaded machine.
    const e = make({ invocationTimeoutMs: 2000 });
    await rejectsWith(e.invoke('& {\n# fake:hang\n}'), 'COMMAND_FAILED');
    assert.equal(resultOf(await e.invoke('& {\n# after\n}')).ok, true);
    assert.equal(e.started, 2);
  });

  it('refuses scripts the transport would change, before starting anything', async () => {
    const e = make();
    await assert.rejects(e.invoke('& {\n\n}'), /blank/);
    await assert.rejects(e.invoke("& {\n$x = '\u2019'\n}"), /ASCII/);
    assert.equal(e.started, 0);
  });

  it('runs the helper with the secret on stdin only', async () => {
    const e = make();
    const pw = newPassword();
    const r = await e.runFile('C:\\Program Files\\jit-access\\ps\\jit-set-password.ps1', ['-Name', 'jtabc'], `${pw}\r\n`);
    assert.equal(r.exitCode, 0);
    const out = resultOf(r);
    assert.deepEqual(out.argv, helperArgv('C:\\Program Files\\jit-access\\ps\\jit-set-password.ps1', ['-Name', 'jtabc']));
    assert.equal(out.stdinSha, sha(`${pw}\r\n`));
    assert.ok(!JSON.stringify(out.argv).includes(pw));
  });

  it('refuses to start when NODE_POWERSHELL would replace the executable', () => {
    process.env.NODE_POWERSHELL = '/tmp/elsewhere';
    try {
      assert.throws(() => new NodePowerShellExecutor({ executable: fake }), (e: unknown) => e instanceof AccountError && e.code === 'COMMAND_FAILED');
    } finally {
      delete process.env.NODE_POWERSHELL;
    }
  });

  it('picks 64-bit Windows PowerShell, also from a 32-bit process', () => {
    assert.equal(windowsPowerShellPath({ SystemRoot: 'C:\\Windows' }, 'x64'), 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe');
    assert.equal(windowsPowerShellPath({ SystemRoot: 'D:\\WIN', PROCESSOR_ARCHITEW6432: 'AMD64' }, 'ia32'), 'D:\\WIN\\Sysnative\\WindowsPowerShell\\v1.0\\powershell.exe');
    assert.equal(windowsPowerShellPath({}, 'ia32'), 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe');
  });

  it('runs PowerShell 7 by its absolute path under Program Files, never a pwsh found on PATH', () => {
    assert.equal(pwshPath({ ProgramW6432: 'C:\\Program Files', ProgramFiles: 'C:\\Program Files (x86)' }), 'C:\\Program Files\\PowerShell\\7\\pwsh.exe');
    assert.equal(pwshPath({}), 'C:\\Program Files\\PowerShell\\7\\pwsh.exe');
  });
});

describe('WindowsBackend options', () => {
  it('wants an absolute, ASCII helper directory', () => {
    // " and % also: the backstop task's argument string quotes the path, and Task Scheduler expands %VAR%.
    for (const helperDir of ['relative\\dir', '\\\\server\\share\\x', 'C:\\Prögram', '/usr/local', 'C:\\a"b', 'C:\\%TEMP%\\ps']) {
      assert.throws(() => new WindowsBackend({ executor: new RecordingExecutor(new WindowsModel()), helperDir }));
    }
  });
});
