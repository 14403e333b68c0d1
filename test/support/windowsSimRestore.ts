/**
 * The restore timer of an elevation on the simulated Windows (windowsSim.ts): answers armRestore,
 * disarmRestore and dropRestores (agent/os/windows-restore.ts) with the Task Scheduler model of
 * windowsSimTasks.ts, and runs the restore helper against the model when its task fires. Same
 * rule as the rest of the model: a change happens only if the script holds the code that makes it.
 */
import { BACKSTOP_TASK_PATH } from '../../agent/os/windows-backstop.ts';
import { restoreTaskName } from '../../agent/os/windows-restore.ts';
import type { Json, Params, ScriptTokens, WindowsModel } from './windowsSim.ts';
import { helperHash, namedArgs, register, unregister, type HelperRun } from './windowsSimTasks.ts';

const PREFIX = 'restore-';

export function answerRestoreOp(model: WindowsModel, op: 'armRestore' | 'disarmRestore' | 'dropRestores', p: Params, t: ScriptTokens): Json {
  if (op === 'armRestore') {
    const sha = helperHash(model, p, t);
    if (sha === null) return { ok: false, code: 'COMMAND_FAILED', message: 'the backstop helper is missing or not ours' };
    return register(model, restoreTaskName(p.Grant as string), PREFIX, sha, p, t);
  }
  if (op === 'disarmRestore') return unregister(model, restoreTaskName(p.Grant as string), PREFIX, t);
  const ours = () => model.tasks.filter((x) => x.path === BACKSTOP_TASK_PATH && x.name.startsWith(PREFIX));
  const before = ours().length;
  if (t.has('Get-ScheduledTask', 'Unregister-ScheduledTask') && t.literalIncludes(PREFIX)) model.tasks = model.tasks.filter((x) => !ours().includes(x));
  return { ok: true, removed: before - ours().length, left: ours().length, folder: true };
}

/** The restore helper: out of the group by SID, and with -Logoff every session and process of a local account ended. */
export const runRestoreHelper: HelperRun = (model, rest, t) => {
  const args = namedArgs(rest);
  const grant = args.get('-grant') ?? '';
  const sid = args.get('-sid') ?? '';
  const group = args.get('-groupsid') ?? '';
  const valid = /^[A-Za-z0-9._-]{1,64}$/.test(grant) && /^S-1-5-21-\d{1,10}-\d{1,10}-\d{1,10}-\d{1,10}$/.test(sid) && /^S-1-5-32-(544|547|545)$/.test(group);
  if (!valid || ![6, 7].includes(rest.length) || (rest.length === 7 && !args.has('-logoff'))) return { json: { why: 'Cannot validate argument' }, exitCode: 1 };
  const members = model.members.get(group)!;
  if (t.has('Remove-LocalGroupMember', '-SID', '-Member')) members.delete(sid);
  const member = members.has(sid);
  const u = model.users.find((x) => x.sid === sid);
  let left = { sessionsLeft: [] as unknown[], processesLeft: 0 };
  if (args.has('-logoff') && t.assigns('$sid', /^\$Sid$/i) && u) {
    let pass = model.logoffPass(u, t);
    for (let i = 1; i < 5 && t.has('Start-Sleep') && (pass.sessionsLeft.length > 0 || pass.processesLeft > 0); i++) pass = model.logoffPass(u, t);
    left = pass;
  }
  const ok = !member && left.sessionsLeft.length === 0 && left.processesLeft === 0;
  return { json: { ok, member, sessionsLeft: left.sessionsLeft, processesLeft: left.processesLeft }, exitCode: ok ? 0 : 1 };
};
