/**
 * The Task Scheduler of the simulated Windows (windowsSim.ts): answers the backstop's session
 * operations (armBackstop, disarmBackstop, dropBackstops) and runs a registered task's action,
 * the backstop helper, against the model, as Task Scheduler would at the trigger time.
 *
 * Same rule as the rest of the model: a change happens only if the script holds the code that
 * makes it (ScriptTokens: commands, parameters, members, literals; never comments). What the
 * documentation leaves open is taken at its worst:
 * - what `New-ScheduledTaskTrigger -At <DateTime>` writes into StartBoundary is not documented:
 *   the model writes the DateTime's digits without an offset, which Task Scheduler reads as the
 *   machine's local time (ITrigger::put_StartBoundary). Only a StartBoundary the script sets
 *   itself, in UTC with `Z`, is taken as written;
 * - `boundaryStyle` lets a test make Windows hand the boundary back in another (equivalent or
 *   ambiguous) form;
 * - a task whose principal is not SYSTEM as a service account never runs while nobody is logged
 *   on, and the helper runs only if the action is 64-bit Windows PowerShell with our argv.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BACKSTOP_END_DAYS, BACKSTOP_TASK_PATH, backstopTaskName } from '../../agent/os/windows-backstop.ts';
import { helperArgv, windowsPowerShellPath } from '../../agent/os/windows-exec.ts';
import { COMMON, MARKER } from '../../agent/os/windows-common.ts';
import type { Json, MTask, Params, ScriptTokens, WindowsModel } from './windowsSim.ts';

const DAY_MS = 86_400_000;
/** Where the model's Windows keeps Windows PowerShell (a 64-bit Task Scheduler service). */
export const TASK_POWERSHELL = windowsPowerShellPath({}, 'x64');

const isoZ = (ms: number): string => `${new Date(ms).toISOString().slice(0, 19)}Z`;

/** The wall clock of `ms` in a zone `zoneMinutes` east of UTC: with its offset, or without (naive). */
function wallClock(ms: number, zoneMinutes: number, withOffset: boolean): string {
  const digits = new Date(ms + zoneMinutes * 60_000).toISOString().slice(0, 19);
  if (!withOffset) return digits;
  const a = Math.abs(zoneMinutes);
  return `${digits}${zoneMinutes < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

/** When a StartBoundary fires on the model's machine: an offset is used as given, no offset means local time. */
export function boundaryInstant(model: WindowsModel, boundary: string): number {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:\d{2})?$/.exec(boundary);
  assert.ok(m, `not a StartBoundary: ${boundary}`);
  if (m[2]) return Date.parse(boundary);
  return Date.parse(`${m[1]}Z`) - model.timeZoneMinutes * 60_000;
}

/** How the model's Windows stores a boundary the script wrote. */
function stored(model: WindowsModel, boundary: string): string {
  if (!boundary.endsWith('Z') || model.boundaryStyle === 'as-written') return boundary;
  return wallClock(Date.parse(boundary), model.timeZoneMinutes, model.boundaryStyle === 'local-offset');
}

export const notFound = (name: string): Json => ({
  ok: false,
  error: { type: 'Microsoft.Management.Infrastructure.CimException', fqid: 'CmdletizationQuery_NotFound_TaskName,Get-ScheduledTask', category: 'ObjectNotFound', message: `No MSFT_ScheduledTask objects found with property 'TaskName' equal to '${name}'.` },
});

export function findTask(model: WindowsModel, name: string): MTask | undefined {
  return model.tasks.find((t) => t.path === BACKSTOP_TASK_PATH && t.name.toLowerCase() === name.toLowerCase());
}

/** What the arm script prints about a registered task (its read-back). */
function readBack(task: MTask, t: ScriptTokens): Json {
  return {
    path: task.path,
    name: task.name,
    triggers: task.triggers ?? [],
    actions: task.actions ?? [],
    principalSid: task.userId === 'SYSTEM' && t.has('Translate') ? 'S-1-5-18' : null,
    logonType: task.logonType ?? 'Interactive',
    runLevel: task.runLevel ?? 'Limited',
    ...task.settings!,
  };
}

function arm(model: WindowsModel, p: Params, t: ScriptTokens): Json {
  const name = p.Name as string;
  const u = model.find(name);
  if (!u) return { ok: false, code: 'NOT_FOUND', message: 'no such account' };
  if (!u.description.startsWith(MARKER)) return { ok: false, code: 'NOT_MANAGED', message: 'the account lacks the jit-access marker' };
  if (u.sid !== p.Sid) return { ok: false, code: 'COMMAND_FAILED', message: 'the account has another SID' };
  const sha = helperHash(model, p, t);
  if (sha === null) return { ok: false, code: 'COMMAND_FAILED', message: 'the backstop helper is missing or not ours' };
  return register(model, backstopTaskName(name), 'backstop-', sha, p, t);
}

/** The helper's SHA-256 as the arm script finds it, or null when the script checks it and it differs. */
export function helperHash(model: WindowsModel, p: Params, t: ScriptTokens): string | null {
  const helper = model.files.get((p.HelperPath as string).toLowerCase());
  const sha = helper === undefined ? '' : createHash('sha256').update(helper).digest('hex').toUpperCase();
  return t.has('Get-FileHash') && sha !== (p.HelperHash as string).toUpperCase() ? null : sha;
}

/** The registration shared by the arm scripts (REGISTER_TASK): what Task Scheduler stores, read back. */
export function register(model: WindowsModel, taskName: string, prefix: string, sha: string, p: Params, t: ScriptTokens): Json {
  if (!t.has(BACKSTOP_TASK_PATH) || !t.has(prefix)) return notFound(taskName);
  if (t.has('Register-ScheduledTask', '-TaskPath', '-TaskName')) {
    const old = findTask(model, taskName);
    if (old && !t.has('-Force')) {
      return { ok: false, error: { type: 'Microsoft.Management.Infrastructure.CimException', fqid: 'HRESULT 0x800700b7,Register-ScheduledTask', message: 'Cannot create a file when that file already exists.', hresult: 0x800700b7 | 0 } };
    }
    const atMs = p.AtMs as number;
    // $at is the UTC DateTime of $AtMs and $inv the invariant culture; else the digits are not the UTC ones.
    const utc = t.assigns('$at', /^\[DateTimeOffset\]::FromUnixTimeMilliseconds\(\$AtMs\)\.UtcDateTime$/i) && t.assigns('$inv', /^\[System\.Globalization\.CultureInfo\]::InvariantCulture$/i);
    const system = t.has('-Principal', 'New-ScheduledTaskPrincipal', '-UserId', 'S-1-5-18');
    const task: MTask = {
      path: BACKSTOP_TASK_PATH,
      name: taskName,
      // Without a principal the task is the caller's (the agent runs as SYSTEM), interactive only.
      userId: 'SYSTEM',
      logonType: system && t.has('-LogonType', 'ServiceAccount') ? 'ServiceAccount' : 'Interactive',
      runLevel: system && t.has('-RunLevel', 'Highest') ? 'Highest' : 'Limited',
      triggers: t.has('-Trigger', 'New-ScheduledTaskTrigger', '-Once', '-At')
        ? [{
            type: 'MSFT_TaskTimeTrigger',
            start: stored(model, utc && t.assigns('$trigger.StartBoundary', /^\$at\.ToString\('s', \$inv\) \+ 'Z'$/) ? isoZ(atMs) : new Date(atMs).toISOString().slice(0, 19)),
            end: utc && t.assigns('$trigger.EndBoundary', new RegExp(`^\\$at\\.AddDays\\(${BACKSTOP_END_DAYS}\\)\\.ToString\\('s', \\$inv\\) \\+ 'Z'$`)) ? stored(model, isoZ(atMs + BACKSTOP_END_DAYS * DAY_MS)) : '',
            enabled: true,
          }]
        : [],
      actions: t.has('-Action', 'New-ScheduledTaskAction', '-Execute', '-Argument') ? [{ type: 'MSFT_TaskExecAction', execute: p.Execute as string, arguments: p.Arguments as string }] : [],
      settings: {
        startWhenAvailable: t.has('-Settings', '-StartWhenAvailable'),
        executionTimeLimit: t.has('-Settings', '-ExecutionTimeLimit', 'New-TimeSpan', '-Minutes') ? 'PT5M' : 'PT72H',
        disallowStartIfOnBatteries: !t.has('-Settings', '-AllowStartIfOnBatteries'),
        stopIfGoingOnBatteries: !t.has('-Settings', '-DontStopIfGoingOnBatteries'),
        enabled: true,
      },
    };
    model.tasks = model.tasks.filter((x) => x !== old);
    model.tasks.push(task);
    model.taskFolders.add(BACKSTOP_TASK_PATH);
  }
  const task = findTask(model, taskName);
  if (!task || !t.has('Get-ScheduledTask')) return notFound(taskName);
  return { ok: true, sha256: sha, task: readBack(task, t) };
}

function disarm(model: WindowsModel, p: Params, t: ScriptTokens): Json {
  return unregister(model, backstopTaskName(p.Name as string), 'backstop-', t);
}

/** The unregistration shared by the disarm scripts (UNREGISTER_TASK). */
export function unregister(model: WindowsModel, taskName: string, prefix: string, t: ScriptTokens): Json {
  const task = t.has(BACKSTOP_TASK_PATH, prefix) ? findTask(model, taskName) : undefined;
  if (task && t.has('Unregister-ScheduledTask', '-TaskPath', '-TaskName')) model.tasks = model.tasks.filter((x) => x !== task);
  return { ok: true, removed: task !== undefined, left: findTask(model, taskName) !== undefined };
}

function drop(model: WindowsModel, t: ScriptTokens): Json {
  const ours = () => model.tasks.filter((x) => x.path === BACKSTOP_TASK_PATH);
  const before = ours().length;
  if (t.has(BACKSTOP_TASK_PATH) && t.has('Get-ScheduledTask', 'Unregister-ScheduledTask')) model.tasks = model.tasks.filter((x) => x.path !== BACKSTOP_TASK_PATH);
  if (ours().length === 0 && t.has('Schedule.Service', 'DeleteFolder')) model.taskFolders.delete(BACKSTOP_TASK_PATH);
  return { ok: true, removed: before - ours().length, left: ours().length, folder: model.taskFolders.has(BACKSTOP_TASK_PATH) };
}

/** The backstop operations of the session. */
export function answerTaskOp(model: WindowsModel, op: 'armBackstop' | 'disarmBackstop' | 'dropBackstops', p: Params, t: ScriptTokens): Json {
  if (op === 'armBackstop') return arm(model, p, t);
  if (op === 'disarmBackstop') return disarm(model, p, t);
  return drop(model, t);
}

/** Splits a command line as CommandLineToArgvW does (quotes group, 2n backslashes + quote = n backslashes). */
export function splitCommandLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let any = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\') {
      let n = 0;
      while (line[i] === '\\') (n++, i++);
      if (line[i] === '"') {
        cur += '\\'.repeat(Math.floor(n / 2));
        if (n % 2) cur += '"';
        else quoted = !quoted;
      } else {
        cur += '\\'.repeat(n);
        i--;
      }
      any = true;
    } else if (c === '"') {
      quoted = !quoted;
      any = true;
    } else if (/\s/.test(c) && !quoted) {
      if (any) out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += c;
      any = true;
    }
  }
  if (any) out.push(cur);
  return out;
}

export interface TaskRun {
  /** Task Scheduler started the action. */
  ran: boolean;
  exitCode: number;
  result?: Json;
  why?: string;
}

/** What one helper does when its task runs: its arguments after the helper argv, its own code's tokens. */
export type HelperRun = (model: WindowsModel, args: string[], t: ScriptTokens) => { json: Json; exitCode: number };

/**
 * Runs the task as Task Scheduler would at its trigger: as SYSTEM with nobody logged on, the
 * action's executable with its argument string, which must start one of our helper files
 * (`helpers`, by file name).
 */
export async function runTask(model: WindowsModel, path: string, name: string, tokensOf: (script: string) => Promise<ScriptTokens>, helpers: Record<string, HelperRun>): Promise<TaskRun> {
  const task = model.tasks.find((t) => t.path === path && t.name === name);
  assert.ok(task, `no task ${path}${name}`);
  if (task.userId !== 'SYSTEM' || task.logonType !== 'ServiceAccount') return { ran: false, exitCode: -1, why: 'runs only while its user is logged on' };
  const action = task.actions?.[0];
  if (!action || action.execute !== TASK_POWERSHELL) return { ran: false, exitCode: -1, why: `not 64-bit Windows PowerShell: ${action?.execute}` };
  const argv = splitCommandLine(action.arguments);
  const file = argv[6] ?? '';
  const prefix = helperArgv(file, []);
  if (JSON.stringify(argv.slice(0, prefix.length)) !== JSON.stringify(prefix)) return { ran: true, exitCode: 1, why: `unexpected arguments ${action.arguments}` };
  const script = model.files.get(file.toLowerCase());
  if (script === undefined) return { ran: true, exitCode: 1, why: `The argument '${file}' to the -File parameter does not exist.` };
  // The common functions are checked to be exactly COMMON, then left out of the tokens, so that
  // only what the helper's own code does counts (COMMON also calls Get-LocalUser, Test-JitManaged…).
  const lines = script.replace(/\r\n$/, '').split('\r\n');
  const at = lines.indexOf(COMMON[0]!);
  assert.ok(at > 0 && JSON.stringify(lines.slice(at, at + COMMON.length)) === JSON.stringify(COMMON), 'the helper carries COMMON unchanged');
  const own = [...lines.slice(0, at), ...lines.slice(at + COMMON.length)].join('\n');
  const helper = helpers[file.split('\\').pop()!.toLowerCase()];
  assert.ok(helper, `no model of the helper ${file}`);
  const { json, exitCode } = helper(model, argv.slice(prefix.length), await tokensOf(own));
  task.lastResult = exitCode;
  return { ran: true, exitCode, result: json };
}

/** `-Name value -Sid value` style arguments, by lower-case name; a switch maps to ''. */
export function namedArgs(rest: string[]): Map<string, string> {
  const args = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const next = rest[i + 1];
    if (next !== undefined && !next.startsWith('-')) args.set(rest[i]!.toLowerCase(), rest[++i]!);
    else args.set(rest[i]!.toLowerCase(), '');
  }
  return args;
}

/** The backstop helper: finds the account as its code says (by the -Sid parameter, or by name), then acts. */
export const runBackstopHelper: HelperRun = (model, rest, t) => {
  const args = namedArgs(rest);
  const name = args.get('-name') ?? '';
  const sid = args.get('-sid') ?? '';
  if (rest.length !== 4 || !/^[a-z][a-z0-9_-]{0,19}$/.test(name) || !/^S-1-5-21-\d{1,10}-\d{1,10}-\d{1,10}-\d{1,10}$/.test(sid)) {
    return { json: { why: 'Cannot validate argument' }, exitCode: 1 };
  }
  const u = t.assigns('$u', /^Get-LocalUser -SID \$Sid$/i)
    ? model.users.find((x) => x.sid === sid)
    : t.assigns('$u', /^(Get-LocalUser -Name \$Name|Find-JitUser \$Name|Get-JitManagedUser \$Name)$/i)
      ? model.find(name)
      : undefined;
  const tagged = !t.has('Test-JitManaged') || u?.description.startsWith(MARKER);
  if (!u || u.name.toLowerCase() !== name.toLowerCase() || !tagged) return { json: { ok: true, acted: false }, exitCode: 0 };
  if (t.has('Disable-LocalUser')) u.enabled = false;
  if (t.has('Set-LocalUser', '-AccountExpires') && !model.ignoreExpiry) u.expiresMs = Date.now();
  let pass = model.logoffPass(u, t);
  for (let i = 1; i < 5 && t.has('Start-Sleep') && (pass.sessionsLeft.length > 0 || pass.processesLeft > 0); i++) pass = model.logoffPass(u, t);
  const ok = !u.enabled && pass.sessionsLeft.length === 0 && pass.processesLeft === 0;
  return { json: { ok, acted: true, enabled: u.enabled, sessionsLeft: pass.sessionsLeft, processesLeft: pass.processesLeft }, exitCode: ok ? 0 : 1 };
};
