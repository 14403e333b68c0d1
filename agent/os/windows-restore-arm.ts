/**
 * RestoreTimers on Windows (the PowerShell and the design are in windows-restore.ts): the task
 * \jit-access\restore-<grant> registered, read back field by field and removed by the same code
 * as the temporary-account backstop (windows-backstop-arm.ts), with its own constant helper.
 */
import { AccountError } from './backend.ts';
import { RESTORE_GRANT_ID, type RestoreSpec, type RestoreTimers } from './elevation.ts';
import { backstopExecutable, backstopInstant, commandLineArg, DropResult, InstalledHelper, registerChecked, unregisterChecked, type RunOp } from './windows-backstop-arm.ts';
import { helperArgv } from './windows-exec.ts';
import { ACCOUNT_SID_PATTERN, RESTORE_FILE, RESTORE_HELPER_LINES, restoreTaskName } from './windows-restore.ts';
import { groupSid } from './windows-values.ts';

const ACCOUNT_SID = new RegExp(ACCOUNT_SID_PATTERN);

export interface RestoreDeps {
  run: RunOp;
  /** The admin-only helper directory (the password helper's). */
  helperDir: string;
  /** The SID of the account a grant names (WindowsElevation's resolution), or null. */
  sidOf(name: string): Promise<string | null>;
  env?: NodeJS.ProcessEnv;
}

/** The action's argument string: the helper argv, then -Grant, -Sid, -GroupSid and -Logoff. */
export function restoreArguments(file: string, grantId: string, sid: string, group: string, logoff: boolean): string {
  if (!RESTORE_GRANT_ID.test(grantId)) throw new AccountError('INVALID_NAME', `${JSON.stringify(grantId)} cannot name a restore task`);
  // Built-in accounts (S-1-5-18…) are refused before: they are never elevated.
  if (!ACCOUNT_SID.test(sid)) throw new AccountError('COMMAND_FAILED', `${JSON.stringify(sid)} is not the SID of a user account`);
  return helperArgv(file, ['-Grant', grantId, '-Sid', sid, '-GroupSid', group, ...(logoff ? ['-Logoff'] : [])]).map(commandLineArg).join(' ');
}

export class WindowsRestoreTimers implements RestoreTimers {
  private readonly helper: InstalledHelper;

  constructor(private readonly deps: RestoreDeps) {
    this.helper = new InstalledHelper(deps.run, deps.helperDir, RESTORE_FILE, RESTORE_HELPER_LINES);
  }

  async arm(s: RestoreSpec): Promise<void> {
    if (!RESTORE_GRANT_ID.test(s.grantId)) throw new AccountError('INVALID_NAME', `${JSON.stringify(s.grantId)} cannot name a restore task`);
    // sudo has no Windows meaning: a task is only ever for a membership we added.
    if (!s.membership) throw new AccountError('COMMAND_FAILED', 'a Windows restore task takes a membership away; this grant added none');
    const atMs = backstopInstant(s.at);
    const sid = await this.deps.sidOf(s.name);
    if (!sid) throw new AccountError('NOT_FOUND', `no account ${s.name}`);
    const group = groupSid(s.group);
    const want = { task: restoreTaskName(s.grantId), atMs, execute: backstopExecutable(this.deps.env), args: restoreArguments(this.helper.path, s.grantId, sid, group, s.logoff) };
    await registerChecked(this.deps.run, this.helper, 'armRestore', { Grant: s.grantId, Sid: sid, GroupSid: group }, want, () => this.disarm(s.grantId));
  }

  async disarm(grantId: string): Promise<void> {
    if (!RESTORE_GRANT_ID.test(grantId)) throw new AccountError('INVALID_NAME', `${JSON.stringify(grantId)} cannot name a restore task`);
    await unregisterChecked(this.deps.run, 'disarmRestore', { Grant: grantId }, restoreTaskName(grantId));
  }

  /** Uninstall: every restore task, then the helper file. */
  async drop(): Promise<void> {
    const r = await this.deps.run('dropRestores', {}, DropResult);
    if (r.left > 0) throw new AccountError('COMMAND_FAILED', `${r.left} restore task(s) still registered`);
    await this.helper.drop();
  }
}
