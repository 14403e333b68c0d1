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
import { BACKSTOP_END_DAYS, BACKSTOP_FILE, BACKSTOP_HELPER_LINES, BACKSTOP_TASK_PATH, backstopTaskName, LOCAL_SID_PATTERN } from './windows-backstop.ts';
import { helperArgv, windowsPowerShellPath } from './windows-exec.ts';
import { InstallResult, OkResult, psList } from './windows-result.ts';
import type { Op, PsParam } from './windows-scripts.ts';

/** Runs one session operation and parses its result (WindowsBackend.run). */
export type RunOp = <T extends z.ZodType>(op: Op, params: Record<string, PsParam>, schema: T) => Promise<z.infer<T>>;

const DAY_MS = 86_400_000;
const SYSTEM_SID = 'S-1-5-18';
const LOCAL_SID = new RegExp(LOCAL_SID_PATTERN);

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
export const DropResult = z.object({ ok: z.literal(true), removed: z.number(), left: z.number(), folder: z.boolean() });

/**
 * The task's executable: 64-bit Windows PowerShell by its System32 path. Not Sysnative, even when
 * the agent is a 32-bit process: the task is started by the 64-bit Task Scheduler service, which
 * sees the real System32 (and no Sysnative).
 */
export function backstopExecutable(env: NodeJS.ProcessEnv = process.env): string {
  return windowsPowerShellPath(env, 'x64');
}

/** One argument of the task's command line; what Task Scheduler or the parser would change is refused. */
export function commandLineArg(a: string): string {
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
function problems(t: TaskReadBack, want: TaskWanted): string[] {
  const out: string[] = [];
  const check = (ok: boolean, what: string) => void (ok || out.push(what));
  check(t.path === BACKSTOP_TASK_PATH && t.name === want.task, `task ${t.path}${t.name}`);
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

/** What a registered task must read back as. */
export interface TaskWanted {
  task: string;
  atMs: number;
  execute: string;
  args: string;
}

/**
 * A constant helper script in the admin-only helper directory, installed once per backend (like
 * the password helper) and hash-checked; a failure is retried next time.
 */
export class InstalledHelper {
  readonly sha256: string;
  private ready: Promise<void> | undefined;

  constructor(
    private readonly run: RunOp,
    private readonly dir: string,
    readonly file: string,
    private readonly lines: readonly string[],
  ) {
    this.sha256 = helperSha256(lines);
  }

  get path(): string {
    return path.win32.join(this.dir, this.file);
  }

  ensure(): Promise<void> {
    this.ready ??= this.install().catch((e: unknown) => {
      this.ready = undefined;
      throw e;
    });
    return this.ready;
  }

  /** The file may be missing or changed: install it again next time. */
  forget(): void {
    this.ready = undefined;
  }

  async drop(): Promise<void> {
    this.ready = undefined;
    await this.run('dropHelper', { Dir: this.dir, File: this.file }, OkResult);
  }

  private async install(): Promise<void> {
    const r = await this.run('installHelper', { Dir: this.dir, File: this.file, Lines: this.lines }, InstallResult);
    if (r.sha256.toUpperCase() !== this.sha256) throw new AccountError('COMMAND_FAILED', `helper at ${r.path} does not have the expected content`);
  }
}

/** SHA-256 of a helper as installHelper writes it (CRLF lines; upper case, as Get-FileHash prints it). */
export function helperSha256(lines: readonly string[]): string {
  return createHash('sha256').update(`${lines.join('\r\n')}\r\n`, 'ascii').digest('hex').toUpperCase();
}

/**
 * Runs an arm operation (armBackstop, armRestore) with its helper installed, and checks what Task
 * Scheduler stored. A task that does not read back as meant is removed again (`remove`) and the
 * arm fails.
 */
export async function registerChecked(run: RunOp, helper: InstalledHelper, op: Op, params: Record<string, PsParam>, want: TaskWanted, remove: () => Promise<void>): Promise<void> {
  await helper.ensure();
  let r: z.infer<typeof ArmResult>;
  try {
    r = await run(op, { ...params, AtMs: want.atMs, Execute: want.execute, Arguments: want.args, HelperPath: helper.path, HelperHash: helper.sha256 }, ArmResult);
  } catch (e) {
    // Whatever an earlier arm registered stays (the caller is told, and may retry or disarm).
    helper.forget();
    throw e;
  }
  const wrong = [...(r.sha256.toUpperCase() === helper.sha256 ? [] : ['helper hash']), ...problems(r.task, want)];
  if (wrong.length > 0) {
    await remove().catch(() => {});
    throw new AccountError('COMMAND_FAILED', `the task ${BACKSTOP_TASK_PATH}${want.task} did not read back as registered, so it was removed: ${wrong.join('; ')}`);
  }
}

/** Runs a disarm operation; a task still registered afterwards is a failure. */
export async function unregisterChecked(run: RunOp, op: Op, params: Record<string, PsParam>, task: string): Promise<void> {
  const r = await run(op, params, DisarmResult);
  if (r.left) throw new AccountError('COMMAND_FAILED', `the task ${BACKSTOP_TASK_PATH}${task} is still registered`);
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
  private readonly helper: InstalledHelper;

  constructor(private readonly deps: BackstopDeps) {
    this.helper = new InstalledHelper(deps.run, deps.helperDir, BACKSTOP_FILE, BACKSTOP_HELPER_LINES);
  }

  get helperPath(): string {
    return this.helper.path;
  }

  async arm(name: string, at: Date): Promise<'timer'> {
    assertValidName(name);
    const atMs = backstopInstant(at);
    const info = await this.deps.lookup(name);
    if (!info) throw new AccountError('NOT_FOUND', `no account ${name}`);
    if (!info.managed) throw notManaged(name);
    const want = { task: backstopTaskName(name), atMs, execute: backstopExecutable(this.deps.env), args: backstopArguments(this.helperPath, name, info.id) };
    await registerChecked(this.deps.run, this.helper, 'armBackstop', { Name: name, Sid: info.id }, want, () => this.disarm(name));
    return 'timer';
  }

  /** Unregisters \jit-access\backstop-<name>; a missing task (or account) is success. */
  async disarm(name: string): Promise<void> {
    assertValidName(name);
    await unregisterChecked(this.deps.run, 'disarmBackstop', { Name: name }, backstopTaskName(name));
  }

  /**
   * Uninstall: every task in \jit-access\, the folder (an empty folder that could not be
   * deleted is not an error: it runs nothing), then the helper file.
   */
  async drop(): Promise<void> {
    const r = await this.deps.run('dropBackstops', {}, DropResult);
    if (r.left > 0) throw new AccountError('COMMAND_FAILED', `${r.left} backstop task(s) still registered in ${BACKSTOP_TASK_PATH}`);
    await this.helper.drop();
  }
}
