/**
 * armBackstop / disarmBackstop for the Windows backend (windows.ts delegates here; the
 * PowerShell and the design are in windows-backstop.ts): installs and hash-checks the constant
 * helper, registers the task, and reads every field of it back. A task that does not read back
 * exactly as meant is unregistered again and the arm fails: one firing at another time (a
 * boundary without offset, read in whatever zone the machine has then) could end the account
 * early, or not at all.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { AccountError, assertValidName, notManaged, type AccountInfo } from './backend.ts';
import { BACKSTOP_END_DAYS, BACKSTOP_FILE, BACKSTOP_HELPER_LINES, BACKSTOP_TASK_PATH, backstopHelperText, backstopTaskName, LOCAL_SID_PATTERN } from './windows-backstop.ts';
import { helperArgv, windowsPowerShellPath } from './windows-exec.ts';
import { InstallResult, OkResult, psList } from './windows-result.ts';
import type { Op, PsParam } from './windows-scripts.ts';

/** Runs one session operation and parses its result (WindowsBackend.run). */
export type RunOp = <T extends z.ZodType>(op: Op, params: Record<string, PsParam>, schema: T) => Promise<z.infer<T>>;

const DAY_MS = 86_400_000;
const SYSTEM_SID = 'S-1-5-18';
const LOCAL_SID = new RegExp(LOCAL_SID_PATTERN);
/** SHA-256 of the helper as installed (upper case, as Get-FileHash prints it). */
export const BACKSTOP_SHA256 = createHash('sha256').update(backstopHelperText(), 'ascii').digest('hex').toUpperCase();

const TaskReadBack = z.object({
  path: z.string(),
  name: z.string(),
  triggers: psList(z.object({ type: z.string(), start: z.string(), end: z.string(), enabled: z.boolean() })),
  actions: psList(z.object({ type: z.string(), execute: z.string(), arguments: z.string() })),
  principalSid: z.string().nullable(),
  logonType: z.string(),
  runLevel: z.string(),
  startWhenAvailable: z.boolean(),
  executionTimeLimit: z.string(),
  disallowStartIfOnBatteries: z.boolean(),
  stopIfGoingOnBatteries: z.boolean(),
  enabled: z.boolean(),
});
type TaskReadBack = z.infer<typeof TaskReadBack>;
const ArmResult = z.object({ ok: z.literal(true), sha256: z.string(), task: TaskReadBack });
const DisarmResult = z.object({ ok: z.literal(true), removed: z.boolean(), left: z.boolean() });
const DropResult = z.object({ ok: z.literal(true), removed: z.number(), left: z.number(), folder: z.boolean() });

/**
 * The task's executable: 64-bit Windows PowerShell by its System32 path. Not Sysnative, even when
 * the agent is a 32-bit process: the task is started by the 64-bit Task Scheduler service, which
 * sees the real System32 (and no Sysnative).
 */
export function backstopExecutable(env: NodeJS.ProcessEnv = process.env): string {
  return windowsPowerShellPath(env, 'x64');
}

/** One argument of the task's command line; what Task Scheduler or the parser would change is refused. */
function commandLineArg(a: string): string {
  // %VAR% is expanded in an action's arguments; a quote or a trailing backslash would end the quoting.
  if (!/^[\x20-\x7E]+$/.test(a) || /["%]/.test(a) || a.endsWith('\\')) {
    throw new AccountError('COMMAND_FAILED', `cannot put ${JSON.stringify(a)} into the backstop task's command line`);
  }
  return a.includes(' ') ? `"${a}"` : a;
}

/** The action's argument string: the helper argv of the password helper, plus -Name and -Sid. */
export function backstopArguments(file: string, name: string, sid: string): string {
  assertValidName(name);
  if (!LOCAL_SID.test(sid)) throw new AccountError('COMMAND_FAILED', `${JSON.stringify(sid)} is not the SID of a local account`);
  return helperArgv(file, ['-Name', name, '-Sid', sid]).map(commandLineArg).join(' ');
}

/** The trigger instant: `at` rounded UP to the second (a trigger has whole seconds; never before the end). */
export function backstopInstant(at: Date): number {
  const ms = at instanceof Date ? at.getTime() : Number.NaN;
  if (!Number.isFinite(ms) || ms <= Date.UTC(2000, 0, 1) || ms >= Date.UTC(9000, 0, 1)) {
    throw new AccountError('COMMAND_FAILED', 'the backstop needs a valid end instant');
  }
  return Math.ceil(ms / 1000) * 1000;
}

/**
 * The instant of a trigger boundary, or null when it has none: without an offset it means the
 * machine's local time at firing (ITrigger::put_StartBoundary), which moves with the zone.
 */
export function boundaryMs(boundary: string): number | null {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})$/.exec(boundary);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}${(m[2] ?? '').slice(0, 4)}${m[3]}`);
  return Number.isFinite(ms) ? ms : null;
}

/** Everything about the read-back task that is not as registered. */
function problems(t: TaskReadBack, want: { name: string; atMs: number; execute: string; args: string }): string[] {
  const out: string[] = [];
  const check = (ok: boolean, what: string) => void (ok || out.push(what));
  check(t.path === BACKSTOP_TASK_PATH && t.name === backstopTaskName(want.name), `task ${t.path}${t.name}`);
  check(t.triggers.length === 1, `${t.triggers.length} triggers`);
  const trigger = t.triggers[0];
  if (trigger) {
    check(trigger.type === 'MSFT_TaskTimeTrigger' && trigger.enabled, `trigger ${trigger.type}${trigger.enabled ? '' : ' (disabled)'}`);
    const start = boundaryMs(trigger.start);
    check(start !== null, `start ${JSON.stringify(trigger.start)} has no UTC offset`);
    check(start === null || start === want.atMs, `start ${trigger.start} is not ${new Date(want.atMs).toISOString()}`);
    check(boundaryMs(trigger.end) === want.atMs + BACKSTOP_END_DAYS * DAY_MS, `end ${JSON.stringify(trigger.end)}`);
  }
  check(t.actions.length === 1 && t.actions[0]!.execute === want.execute && t.actions[0]!.arguments === want.args, 'the action is not our helper with its arguments');
  check(t.principalSid === SYSTEM_SID, `runs as ${t.principalSid ?? 'an unknown account'}, not SYSTEM`);
  // Names, or the numbers of TASK_LOGON_SERVICE_ACCOUNT and TASK_RUNLEVEL_HIGHEST.
  check(t.logonType === 'ServiceAccount' || t.logonType === '5', `logon type ${t.logonType}`);
  check(t.runLevel === 'Highest' || t.runLevel === '1', `run level ${t.runLevel}`);
  check(t.startWhenAvailable, 'StartWhenAvailable is off');
  check(t.executionTimeLimit === 'PT5M', `execution time limit ${t.executionTimeLimit}`);
  check(!t.disallowStartIfOnBatteries && !t.stopIfGoingOnBatteries, 'battery conditions');
  check(t.enabled, 'the task is disabled');
  return out;
}

export interface BackstopDeps {
  run: RunOp;
  /** The admin-only helper directory (the password helper's). */
  helperDir: string;
  lookup(name: string): Promise<AccountInfo | null>;
  env?: NodeJS.ProcessEnv;
}

/** The backstop tasks of one WindowsBackend. */
export class WindowsBackstop {
  private ready: Promise<void> | undefined;

  constructor(private readonly deps: BackstopDeps) {}

  get helperPath(): string {
    return path.win32.join(this.deps.helperDir, BACKSTOP_FILE);
  }

  async arm(name: string, at: Date): Promise<'timer'> {
    assertValidName(name);
    const atMs = backstopInstant(at);
    const info = await this.deps.lookup(name);
    if (!info) throw new AccountError('NOT_FOUND', `no account ${name}`);
    if (!info.managed) throw notManaged(name);
    const execute = backstopExecutable(this.deps.env);
    const args = backstopArguments(this.helperPath, name, info.id);
    await this.ensureHelper();
    let r: z.infer<typeof ArmResult>;
    try {
      r = await this.deps.run(
        'armBackstop',
        { Name: name, Sid: info.id, AtMs: atMs, Execute: execute, Arguments: args, HelperPath: this.helperPath, HelperHash: BACKSTOP_SHA256 },
        ArmResult,
      );
    } catch (e) {
      // The helper may be missing or changed: install it again next time. Whatever an earlier
      // arm registered stays (the caller is told, and may retry or disarm).
      this.ready = undefined;
      throw e;
    }
    const wrong = [...(r.sha256.toUpperCase() === BACKSTOP_SHA256 ? [] : ['helper hash']), ...problems(r.task, { name, atMs, execute, args })];
    if (wrong.length > 0) {
      await this.disarm(name).catch(() => {});
      throw new AccountError('COMMAND_FAILED', `${name}: the backstop task did not read back as registered, so it was removed: ${wrong.join('; ')}`);
    }
    return 'timer';
  }

  /** Unregisters \jit-access\backstop-<name>; a missing task (or account) is success. */
  async disarm(name: string): Promise<void> {
    assertValidName(name);
    const r = await this.deps.run('disarmBackstop', { Name: name }, DisarmResult);
    if (r.left) throw new AccountError('COMMAND_FAILED', `${name}: the backstop task ${BACKSTOP_TASK_PATH}${backstopTaskName(name)} is still registered`);
  }

  /**
   * Uninstall: every task in \jit-access\, the folder (an empty folder that could not be
   * deleted is not an error: it runs nothing), then the helper file.
   */
  async drop(): Promise<void> {
    this.ready = undefined;
    const r = await this.deps.run('dropBackstops', {}, DropResult);
    if (r.left > 0) throw new AccountError('COMMAND_FAILED', `${r.left} backstop task(s) still registered in ${BACKSTOP_TASK_PATH}`);
    await this.deps.run('dropHelper', { Dir: this.deps.helperDir, File: BACKSTOP_FILE }, OkResult);
  }

  /** Installs the helper once per backend (like the password helper); a failure is retried next time. */
  private ensureHelper(): Promise<void> {
    this.ready ??= this.install().catch((e: unknown) => {
      this.ready = undefined;
      throw e;
    });
    return this.ready;
  }

  private async install(): Promise<void> {
    const r = await this.deps.run('installHelper', { Dir: this.deps.helperDir, File: BACKSTOP_FILE, Lines: BACKSTOP_HELPER_LINES }, InstallResult);
    if (r.sha256.toUpperCase() !== BACKSTOP_SHA256) throw new AccountError('COMMAND_FAILED', `backstop helper at ${r.path} does not have the expected content`);
  }
}
