/**
 * WindowsBackend without Windows: every script goes to a RECORDING executor, which keeps the
 * script, argv and stdin of each call apart and answers from a small in-memory model of a
 * Windows machine (users, the three well-known groups, sessions, processes, profiles, files).
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
import { parsePowerShell, readVerbatimString, type PsParseResult } from '../../test/support/psParse.ts';
import { AccountError } from './backend.ts';
import { accountBackendContract, inAnHour, newName, newPassword, rejectsWith } from './contract.ts';
import {
  descriptionFor,
  helperArgv,
  mapPsError,
  NodePowerShellExecutor,
  windowsPowerShellPath,
  WindowsBackend,
  type PsExecutor,
  type PsFileResult,
  type PsResult,
} from './windows.ts';
import {
  assertTransportSafe,
  constantPart,
  GROUP_SIDS,
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

const HELPER_DIR = 'C:\\Program Files\\jit-access\\ps';
const ALL_GROUP_SIDS = Object.values(GROUP_SIDS);

// ---------------------------------------------------------------------------------------------
// Reading our own scripts back
// ---------------------------------------------------------------------------------------------

type Params = Record<string, string | number | string[]>;

/** Decodes one single-quoted literal with PowerShell's rules; fails unless `text` is exactly one. */
function decodeLiteral(text: string): string {
  const r = readVerbatimString(text, 0);
  assert.ok(r && r.end === text.length, `not exactly one single-quoted literal: ${text}`);
  return r.value;
}

/** Splits a session script into operation, prelude values and the constant rest. */
function splitScript(script: string): { op: Op; params: Params; rest: string[] } {
  const lines = script.split('\n');
  assert.equal(lines[0], '& {');
  const header = /^# jit-access op=(\w+)$/.exec(lines[1] ?? '');
  assert.ok(header && header[1]! in OP_BODY, `operation header: ${lines[1]}`);
  const params: Params = {};
  let i = 2;
  for (; i < lines.length && lines[i] !== "$ErrorActionPreference = 'Stop'"; i++) {
    const m = /^\$([A-Z][A-Za-z]*) = (.*)$/.exec(lines[i]!);
    assert.ok(m, `prelude line: ${lines[i]}`);
    const [, key, value] = m as unknown as [string, string, string];
    if (value === '@(') {
      const list: string[] = [];
      for (i++; lines[i] !== ')'; i++) list.push(decodeLiteral(lines[i]!));
      params[key] = list;
    } else if (/^-?\d+$/.test(value)) {
      params[key] = Number(value);
    } else {
      params[key] = decodeLiteral(value);
    }
  }
  return { op: header[1] as Op, params, rest: lines.slice(i) };
}

const parsed = new Map<string, PsParseResult>();
async function parseCached(src: string): Promise<PsParseResult> {
  let r = parsed.get(src);
  if (!r) parsed.set(src, (r = await parsePowerShell(src)));
  return r;
}

// ---------------------------------------------------------------------------------------------
// A simulated Windows
// ---------------------------------------------------------------------------------------------

interface MUser {
  name: string;
  sid: string;
  enabled: boolean;
  description: string;
  expiresMs?: number;
  password?: string;
}

type Json = Record<string, unknown>;
const fail = (code: string, message: string): Json => ({ ok: false, code, message });

/**
 * Answers each operation the way the documentation says Windows does. Deliberately small:
 * names compare case-insensitively, group membership is by SID, a profile stays loaded for a
 * moment after its user's last process ends.
 */
class WindowsModel {
  users: MUser[] = [];
  members = new Map<string, Set<string>>(ALL_GROUP_SIDS.map((g) => [g, new Set<string>()]));
  processes = new Map<number, string>(); // pid -> owner SID
  sessions: { id: number; user: string }[] = [];
  /** SID -> profile; `unloadIn`: delete attempts that still find it loaded after logoff. */
  profiles = new Map<string, { loaded: boolean; unloadIn: number }>();
  files = new Map<string, string>();
  private rid = 1000;
  private pid = 4000;
  private sessionId = 1;

  find(name: string): MUser | undefined {
    return this.users.find((u) => u.name.toLowerCase() === name.toLowerCase());
  }

  addUser(name: string, description: string): MUser {
    const u = { name, sid: `S-1-5-21-1004336348-1177238915-682003330-${++this.rid}`, enabled: false, description };
    this.users.push(u);
    return u;
  }

  /** A logon: a session, a process and a loaded profile. */
  spawn(sid: string): { alive(): boolean; kill(): void } {
    const u = this.users.find((x) => x.sid === sid);
    assert.ok(u, `no account with SID ${sid}`);
    const pid = ++this.pid;
    this.processes.set(pid, sid);
    this.sessions.push({ id: ++this.sessionId, user: u.name });
    this.profiles.set(sid, { loaded: true, unloadIn: 1 });
    return { alive: () => this.processes.has(pid), kill: () => void this.processes.delete(pid) };
  }

  info(u: MUser): Json {
    return {
      name: u.name,
      sid: u.sid,
      enabled: u.enabled,
      description: u.description,
      groups: Object.entries(GROUP_SIDS).filter(([, g]) => this.members.get(g)!.has(u.sid)).map(([name]) => name),
    };
  }

  private managed(name: string): MUser | Json {
    const u = this.find(name);
    if (!u) return fail('NOT_FOUND', 'no such account');
    if (!u.description.startsWith(MARKER)) return fail('NOT_MANAGED', 'the account lacks the jit-access marker');
    return u;
  }

  private setGroup(u: MUser, want: string): void {
    for (const g of ALL_GROUP_SIDS) {
      if (g === want) this.members.get(g)!.add(u.sid);
      else this.members.get(g)!.delete(u.sid);
    }
  }

  answer(op: Op, p: Params): Json {
    const name = p.Name as string;
    const guarded = (fn: (u: MUser) => Json): Json => {
      const u = this.managed(name);
      return 'sid' in u ? fn(u as MUser) : (u as Json);
    };
    switch (op) {
      case 'lookup': {
        const u = this.find(name);
        return { ok: true, user: u ? this.info(u) : null };
      }
      case 'list':
        return { ok: true, users: this.users.filter((u) => u.description.startsWith(MARKER)).map((u) => this.info(u)) };
      case 'create': {
        if (this.find(name)) return fail('ALREADY_EXISTS', 'an account of that name exists');
        const description = p.Description as string;
        // Documented limits of New-LocalUser: a breach is a bug in the backend.
        assert.ok(name.length <= 20 && description.length <= 48, 'New-LocalUser limits');
        assert.ok(ALL_GROUP_SIDS.includes(p.GroupSid as string), 'a wizard group SID');
        const u = this.addUser(name, description);
        u.expiresMs = p.ExpiresMs as number;
        this.setGroup(u, p.GroupSid as string);
        return { ok: true, user: this.info(u) };
      }
      case 'setGroups':
        return guarded((u) => (this.setGroup(u, p.GroupSid as string), { ok: true }));
      case 'enable':
        return guarded((u) => {
          u.expiresMs = p.ExpiresMs as number;
          u.enabled = true;
          return { ok: true, enabled: true };
        });
      case 'disable':
        return guarded((u) => ((u.enabled = false), { ok: true, enabled: false }));
      case 'logoff':
        return guarded((u) => {
          const mine = this.sessions.filter((s) => s.user.toLowerCase() === u.name.toLowerCase());
          this.sessions = this.sessions.filter((s) => !mine.includes(s));
          const pids = [...this.processes].filter(([, sid]) => sid === u.sid).map(([pid]) => pid);
          for (const pid of pids) this.processes.delete(pid);
          return { ok: true, sessions: mine.length, sessionsFailed: 0, processes: pids.length, failed: 0 };
        });
      case 'delete': {
        const u = this.find(name);
        if (!u) return { ok: true, deleted: false };
        if (!u.description.startsWith(MARKER)) return fail('NOT_MANAGED', 'the account lacks the jit-access marker');
        const prof = this.profiles.get(u.sid);
        if (prof?.loaded) {
          const inUse = this.sessions.some((s) => s.user === u.name) || [...this.processes.values()].includes(u.sid);
          if (inUse || prof.unloadIn-- > 0) return fail('LOGGED_IN', 'the profile is loaded');
          prof.loaded = false;
        }
        this.profiles.delete(u.sid);
        this.users = this.users.filter((x) => x !== u);
        for (const set of this.members.values()) set.delete(u.sid);
        return { ok: true, deleted: true, profiles: prof ? 1 : 0 };
      }
      case 'installHelper': {
        const file = path.win32.join(p.Dir as string, p.File as string);
        const text = `${(p.Lines as string[]).join('\r\n')}\r\n`;
        this.files.set(file.toLowerCase(), text);
        return { ok: true, path: file, sha256: createHash('sha256').update(text).digest('hex').toUpperCase() };
      }
    }
  }

  /** The password helper, run as a file with the password on stdin. */
  runHelper(args: string[], stdin: string): Json {
    const name = args[1]!;
    const pw = stdin.split(/\r|\n/)[0] ?? '';
    if (!pw) return fail('COMMAND_FAILED', 'no password on standard input');
    const u = this.managed(name);
    if (!('sid' in u)) return u as Json;
    (u as MUser).password = pw;
    return { ok: true };
  }
}

/** ConvertTo-Json output made ASCII as Out-JitResult does. */
const asciiJson = (v: unknown) => JSON.stringify(v).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

type Call =
  | { kind: 'session'; op: Op; script: string }
  | { kind: 'file'; file: string; args: string[]; argv: string[]; stdin: string; script: string };

/** Records every call (script, argv and stdin apart) and answers from the model or a canned reply. */
class RecordingExecutor implements PsExecutor {
  calls: Call[] = [];
  private canned = new Map<string, PsFileResult[]>();

  constructor(readonly model: WindowsModel) {}

  /** The next call of `op` ('helper' for the password helper) gets `reply` instead of the model's answer. */
  reply(op: Op | 'helper', reply: Partial<PsFileResult>): void {
    const list = this.canned.get(op) ?? [];
    list.push({ stdout: '', stderr: '', hadErrors: !!reply.stderr, exitCode: 0, ...reply });
    this.canned.set(op, list);
  }

  replyJson(op: Op | 'helper', json: unknown): void {
    this.reply(op, { stdout: `${RESULT_PREFIX}${asciiJson(json)}\r\n` });
  }

  sessionCalls(op?: Op): Extract<Call, { kind: 'session' }>[] {
    return this.calls.filter((c): c is Extract<Call, { kind: 'session' }> => c.kind === 'session' && (!op || c.op === op));
  }

  fileCalls(): Extract<Call, { kind: 'file' }>[] {
    return this.calls.filter((c): c is Extract<Call, { kind: 'file' }> => c.kind === 'file');
  }

  async invoke(script: string): Promise<PsResult> {
    assertTransportSafe(script); // as the real executor does before sending
    const { op, params } = splitScript(script);
    this.calls.push({ kind: 'session', op, script });
    const canned = this.canned.get(op)?.shift();
    if (canned) return canned;
    return { stdout: `some stray output\r\n${RESULT_PREFIX}${asciiJson(this.model.answer(op, params))}\r\n`, stderr: '', hadErrors: false };
  }

  async runFile(file: string, args: string[], stdin: string): Promise<PsFileResult> {
    const script = this.model.files.get(file.toLowerCase());
    this.calls.push({ kind: 'file', file, args, argv: [windowsPowerShellPath({}), ...helperArgv(file, args)], stdin, script: script ?? '' });
    const canned = this.canned.get('helper')?.shift();
    if (canned) return canned;
    if (script === undefined) {
      return { exitCode: 1, stdout: '', stderr: `The argument '${file}' to the -File parameter does not exist.`, hadErrors: true };
    }
    if (args[0] !== '-Name' || !/^[a-z][a-z0-9_-]{0,19}$/.test(args[1] ?? '')) {
      return { exitCode: 1, stdout: '', stderr: "Cannot validate argument on parameter 'Name'.", hadErrors: true };
    }
    return { exitCode: 0, stdout: `${RESULT_PREFIX}${asciiJson(this.model.runHelper(args, stdin))}\r\n`, stderr: '', hadErrors: false };
  }

  async dispose(): Promise<void> {}
}

/** Passwords seen on the helper's stdin. */
const passwordsOf = (exec: RecordingExecutor) => exec.fileCalls().map((c) => c.stdin.replace(/\r\n$/, ''));

/**
 * Checks every recorded call: each session script has our shape (prelude of literals, then
 * exactly the operation's constant text), is transport-safe and parses without error under
 * the PowerShell grammar; the helper runs with our argv; no password is in any script, argv
 * or output, only on the helper's stdin.
 */
async function verifyRecording(exec: RecordingExecutor): Promise<void> {
  const passwords = passwordsOf(exec);
  for (const call of exec.calls) {
    const texts = [call.script, ...(call.kind === 'file' ? [...call.argv, ...call.args] : [])];
    for (const pw of passwords) assert.ok(texts.every((t) => !t.includes(pw)), 'a password outside stdin');
    const r = await parseCached(call.script);
    assert.ok(r.ok, `${call.kind === 'session' ? call.op : 'helper'} script does not parse: ${r.errors.join('; ')}`);
    if (call.kind === 'session') {
      assertTransportSafe(call.script);
      const { op, params, rest } = splitScript(call.script);
      assert.deepEqual(Object.keys(params).sort(), [...OP_PARAMS[op]].sort());
      assert.deepEqual(rest, constantPart(op), `${op}: the text after the prelude is not the constant body`);
      // Values are only ever verbatim (single-quoted) literals, never expandable ("…") ones.
      assert.ok(r.literals.every((l) => l.kind === 'verbatim' || l.text.includes('`r`n')), 'an expandable string literal');
    } else {
      assert.equal(call.script, passwordHelperText());
      assert.deepEqual(call.args, ['-Name', call.args[1]]);
    }
  }
}

function windowsEnv() {
  const model = new WindowsModel();
  const exec = new RecordingExecutor(model);
  const sleeps: number[] = [];
  const backend = new WindowsBackend({ executor: exec, helperDir: HELPER_DIR, sleep: async (ms) => void sleeps.push(ms) });
  return { model, exec, backend, sleeps };
}

const spec = (name: string, grantId = 'g1', group: 'Administrators' | 'Users' | 'Power Users' = 'Administrators') => ({
  name,
  group,
  grantId,
  expiresAt: inAnHour(),
});

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
    await backend.setEnabled(name, true, new Date('2030-01-02T03:04:05.678Z'));
    assert.equal(model.find(name)?.expiresMs, Date.parse('2030-01-02T03:04:05.678Z'));
    const proc = model.spawn(info.id);
    assert.deepEqual(await backend.logoff(name), { ended: 2 }); // one session, one process
    assert.equal(proc.alive(), false);
    await backend.setEnabled(name, false);
    await backend.delete(name);
    assert.deepEqual(sleeps, [1000], 'one retry while the profile was still loaded');
    assert.equal(model.find(name), undefined);

    assert.deepEqual(
      exec.calls.map((c) => (c.kind === 'session' ? c.op : 'helper')),
      ['installHelper', 'create', 'helper', 'lookup', 'setGroups', 'helper', 'enable', 'logoff', 'disable', 'delete', 'delete'],
    );
    await verifyRecording(exec);
  });

  it('builds every operation from a constant body: only the prelude changes with the values', () => {
    const sample = (v: string, n: number) => ({ Name: v, Description: v, ExpiresMs: n, GroupSid: v, Dir: v, File: v, Lines: [v, v] });
    for (const op of Object.keys(OP_BODY) as Op[]) {
      const pick = (all: ReturnType<typeof sample>) => Object.fromEntries(OP_PARAMS[op].map((k) => [k, all[k as keyof typeof all]]));
      const a = splitScript(sessionScript(op, pick(sample('jtaaaa', 1))));
      const b = splitScript(sessionScript(op, pick(sample(`x'$(calc)\`"`, 2))));
      assert.deepEqual(a.rest, b.rest, op);
      assert.deepEqual(a.rest, constantPart(op), op);
    }
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
      await backend.setEnabled(name, true, inAnHour());
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
      exec.replyJson('logoff', { ok: true, sessions: 1, sessionsFailed: 0, processes: 2, failed: 1 });
      await rejectsWith(backend.logoff(name), 'COMMAND_FAILED');
      // logoff.exe failing on the console session is tolerated when its processes were ended.
      exec.replyJson('logoff', { ok: true, sessions: 0, sessionsFailed: 1, processes: 3, failed: 0 });
      assert.deepEqual(await backend.logoff(name), { ended: 3 });
      exec.replyJson('enable', { ok: true, enabled: false });
      await rejectsWith(backend.setEnabled(name, true, inAnHour()), 'COMMAND_FAILED');
      await rejectsWith(backend.setEnabled(name, true), 'COMMAND_FAILED'); // no expiresAt: no backstop
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

    it('retries a delete while the profile is loaded, then reports LOGGED_IN', async () => {
      const { backend, model, sleeps } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      model.spawn(info.id); // logged on and never logged off
      await rejectsWith(backend.delete(name), 'LOGGED_IN');
      assert.deepEqual(sleeps, [1000, 2000, 4000, 8000, 15000]);
      assert.ok(model.find(name));
      await backend.logoff(name);
      await backend.delete(name);
      assert.equal(model.find(name), undefined);
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
    const e = make({ invocationTimeoutMs: 500 });
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
});

describe('WindowsBackend options', () => {
  it('wants an absolute, ASCII helper directory', () => {
    for (const helperDir of ['relative\\dir', '\\\\server\\share\\x', 'C:\\Prögram', '/usr/local']) {
      assert.throws(() => new WindowsBackend({ executor: new RecordingExecutor(new WindowsModel()), helperDir }));
    }
  });
});
