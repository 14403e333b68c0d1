/**
 * The recording side of the simulated Windows (windowsSim.ts holds the model): an executor that
 * keeps the script, argv and stdin of each call apart and answers from the model or a canned
 * reply, the check every recording must pass (verifyRecording), and a ready backend on both.
 */
import assert from 'node:assert/strict';
import { helperArgv, windowsPowerShellPath, WindowsBackend, type PsExecutor, type PsFileResult, type PsResult } from '../../agent/os/windows.ts';
import { BACKSTOP_FILE, BACKSTOP_HELPER_LINES } from '../../agent/os/windows-backstop.ts';
import { RESTORE_FILE, RESTORE_HELPER_LINES } from '../../agent/os/windows-restore.ts';
import { assertTransportSafe, constantPart, HELPER_FILE, OP_PARAMS, PASSWORD_HELPER_LINES, passwordHelperText, RESULT_PREFIX, type Op } from '../../agent/os/windows-scripts.ts';
import { HELPER_DIR, parseCached, ScriptTokens, splitScript, WindowsModel } from './windowsSim.ts';

/** ConvertTo-Json output made ASCII as Out-JitResult does. */
export const asciiJson = (v: unknown): string => JSON.stringify(v).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

export type Call =
  | { kind: 'session'; op: Op; script: string }
  | { kind: 'file'; file: string; args: string[]; argv: string[]; stdin: string; script: string };

/** Records every call (script, argv and stdin apart) and answers from the model or a canned reply. */
export class RecordingExecutor implements PsExecutor {
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
    const answer = this.model.answer(op, params, await ScriptTokens.of(script));
    return { stdout: `some stray output\r\n${RESULT_PREFIX}${asciiJson(answer)}\r\n`, stderr: '', hadErrors: false };
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
    const answer = this.model.runHelper(args, stdin, await ScriptTokens.of(script));
    return { exitCode: 0, stdout: `${RESULT_PREFIX}${asciiJson(answer)}\r\n`, stderr: '', hadErrors: false };
  }

  async dispose(): Promise<void> {}
}

/** Passwords seen on the helper's stdin. */
export const passwordsOf = (exec: RecordingExecutor): string[] => exec.fileCalls().map((c) => c.stdin.replace(/\r\n$/, ''));

/**
 * Checks every recorded call: each session script has our shape (prelude of literals, then
 * exactly the operation's constant text), is transport-safe and parses without error under
 * the PowerShell grammar; the helper runs with our argv; no password is in any script, argv
 * or output, only on the helper's stdin.
 */
export async function verifyRecording(exec: RecordingExecutor): Promise<void> {
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
      // A helper file is only ever one of our two constant texts, under its own name.
      if (op === 'installHelper') {
        const want = { [HELPER_FILE]: PASSWORD_HELPER_LINES, [BACKSTOP_FILE]: BACKSTOP_HELPER_LINES, [RESTORE_FILE]: RESTORE_HELPER_LINES }[params.File as string];
        assert.deepEqual(params.Lines, want && [...want], `installHelper: ${String(params.File)} is not one of our helpers with its constant text`);
      }
    } else {
      assert.equal(call.script, passwordHelperText());
      assert.deepEqual(call.args, ['-Name', call.args[1]]);
    }
  }
}

export interface WindowsEnv {
  model: WindowsModel;
  exec: RecordingExecutor;
  backend: WindowsBackend;
  sleeps: number[];
}

export function windowsEnv(): WindowsEnv {
  const model = new WindowsModel();
  const exec = new RecordingExecutor(model);
  const sleeps: number[] = [];
  const backend = new WindowsBackend({ executor: exec, helperDir: HELPER_DIR, sleep: async (ms) => void sleeps.push(ms) });
  return { model, exec, backend, sleeps };
}

export const spec = (name: string, grantId = 'g1', group: 'Administrators' | 'Users' | 'Power Users' = 'Administrators') => ({
  name,
  group,
  grantId,
  expiresAt: new Date(Date.now() + 3_600_000),
});
