/**
 * Windows local accounts through Microsoft.PowerShell.LocalAccounts, driven from one
 * long-lived PowerShell session (node-powershell). The PowerShell texts live in
 * windows-scripts.ts; read its header for how values are quoted and why scripts look as they do.
 *
 * Removal (agent/removal.ts runs it): `disable` (Disable-LocalUser and AccountExpires = now),
 * `logoff` (WTSLogoffSession for every session, then every process of the SID, pass after pass),
 * `delete` (the account alone, by SID), `purge` (the profile and scheduled tasks, by the saved
 * SID, retried on its own). The executor is in windows-exec.ts. The backstop (`armBackstop`,
 * `disarmBackstop`: a scheduled task as SYSTEM that ends the account at the grant's end if the
 * agent cannot) is in windows-backstop.ts and windows-backstop-arm.ts.
 *
 * Nothing here was run on Windows: cmdlet behaviour comes from documentation and the
 * LocalAccounts source (shared notes §1, 📄). windows.test.ts and windows-removal.test.ts check
 * our script texts (parsed by a PowerShell grammar), our parsing of their output and our error
 * mapping, against a recorded, simulated Windows (test/support/windowsSim.ts);
 * windows-wts.test.ts compiles and runs the logoff's C# under Mono.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { GROUPS, type Group } from '../../protocol/groups.ts';
import {
  AccountError,
  assertValidName,
  finishCreate,
  type AccountBackend,
  type AccountInfo,
  type AccountRef,
  type CreateAccountSpec,
  type LogoffResult,
} from './backend.ts';
import { WindowsBackstop } from './windows-backstop-arm.ts';
import { WindowsElevation } from './windows-elevation.ts';
import { logoffUntilDone } from './windows-logoff.ts';
import { firstLine, NodePowerShellExecutor, type PsExecutor } from './windows-exec.ts';
import {
  DeleteResult,
  DisableResult,
  EnabledResult,
  InstallResult,
  ListResult,
  LogoffPass,
  LookupResult,
  OkResult,
  parseResult,
  PurgeResult,
  resultJson,
  UserResult,
  type PsUser,
} from './windows-result.ts';
import { assertPassword, descriptionFor, expiryMs, groupSid, LOCAL_ACCOUNT_SID, redact } from './windows-values.ts';
import { HELPER_FILE, MARKER, PASSWORD_HELPER_LINES, passwordHelperText, sessionScript, type Op, type PsParam } from './windows-scripts.ts';

// The executor moved to windows-exec.ts, result parsing to windows-result.ts, value checks to
// windows-values.ts; these names stay importable from here.
export { mapPsError, PsErrorInfo } from './windows-result.ts';
export { descriptionFor } from './windows-values.ts';
export {
  NodePowerShellExecutor,
  helperArgv,
  pwshPath,
  windowsPowerShellPath,
  type NodePowerShellExecutorOptions,
  type PsExecutor,
  type PsFileResult,
  type PsResult,
} from './windows-exec.ts';

// ---------------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------------

export interface WindowsBackendOptions {
  /** Where scripts run; default a NodePowerShellExecutor with `shell`. */
  executor?: PsExecutor;
  shell?: 'powershell' | 'pwsh';
  /**
   * Directory for the password helper. Must not be writable by non-administrators, or
   * anyone could swap the script that receives passwords. Default: %ProgramFiles%\jit-access\ps
   * (standard users cannot create folders under Program Files; installHelper also locks it).
   */
  helperDir?: string;
  /** Waits between purge attempts while the profile is still loaded (default 1, 2, 4, 8, 15 s). */
  purgeRetryDelaysMs?: number[];
  /** Waits between logoff passes while sessions or processes remain (default 0.5, 1, 2, 4, 8 s). */
  logoffRetryDelaysMs?: number[];
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Local accounts through Microsoft.PowerShell.LocalAccounts. The ownership marker is the
 * account description (`jit-access grant=<id>`); every mutating step except create checks it
 * in the same script that mutates, so there is no gap between check and change.
 */
export class WindowsBackend implements AccountBackend {
  readonly os = 'windows';
  readonly uidRange = null;
  /** A scheduled task is stored by Task Scheduler: it survives a reboot. */
  readonly backstopSurvivesReboot = true;
  private readonly exec: PsExecutor;
  private readonly helperDir: string;
  private readonly purgeDelays: number[];
  private readonly logoffDelays: number[];
  private readonly sleep: (ms: number) => Promise<void>;
  private helperReady: Promise<void> | undefined;
  private readonly backstop: WindowsBackstop;
  readonly elevation: WindowsElevation;

  constructor(opts: WindowsBackendOptions = {}) {
    this.exec = opts.executor ?? new NodePowerShellExecutor({ shell: opts.shell });
    this.helperDir = opts.helperDir ?? path.win32.join(process.env.ProgramFiles ?? 'C:\\Program Files', 'jit-access', 'ps');
    // Why no " or %: the backstop task's command line quotes the path, and Task Scheduler expands %VAR%.
    if (!path.win32.isAbsolute(this.helperDir) || !/^[A-Za-z]:\\/.test(this.helperDir) || !/^[\x20-\x7E]+$/.test(this.helperDir) || /["%]/.test(this.helperDir)) {
      throw new Error(`helperDir must be an absolute drive path in printable ASCII, without " or %: ${this.helperDir}`);
    }
    this.purgeDelays = opts.purgeRetryDelaysMs ?? [1000, 2000, 4000, 8000, 15000];
    this.logoffDelays = opts.logoffRetryDelaysMs ?? [500, 1000, 2000, 4000, 8000];
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.elevation = new WindowsElevation((op, params, schema) => this.run(op, params, schema), this.logoffDelays, this.sleep, this.helperDir);
    this.backstop = new WindowsBackstop({ run: (op, params, schema) => this.run(op, params, schema), helperDir: this.helperDir, lookup: (name) => this.lookup(name) });
  }

  /** Full path of the password helper script. */
  get helperPath(): string {
    return path.win32.join(this.helperDir, HELPER_FILE);
  }

  async lookup(name: string): Promise<AccountInfo | null> {
    assertValidName(name);
    const r = await this.run('lookup', { Name: name }, LookupResult);
    return r.user ? toInfo(r.user) : null;
  }

  async createDisabled(spec: CreateAccountSpec, password: string): Promise<AccountInfo> {
    assertValidName(spec.name);
    assertPassword(password);
    const description = descriptionFor(spec.grantId);
    const sid = groupSid(spec.group);
    const expires = expiryMs(spec.expiresAt);
    // Before creating: a helper that cannot be installed must not leave an account behind.
    await this.ensureHelper();
    await this.run('create', { Name: spec.name, Description: description, ExpiresMs: expires, GroupSid: sid }, UserResult);
    return finishCreate(this, spec.name, () => this.writePassword(spec.name, password));
  }

  async setGroups(name: string, group: Group): Promise<void> {
    assertValidName(name);
    await this.run('setGroups', { Name: name, GroupSid: groupSid(group) }, OkResult);
  }

  /** Sets AccountExpires to `expiresAt` (the OS stops new logons then, even if the agent is dead), then Enable-LocalUser. */
  async enable(name: string, expiresAt: Date): Promise<void> {
    assertValidName(name);
    const r = await this.run('enable', { Name: name, ExpiresMs: expiryMs(expiresAt) }, EnabledResult);
    if (!r.enabled) throw new AccountError('COMMAND_FAILED', `${name}: the account did not become enabled`);
  }

  /**
   * Disable-LocalUser, and AccountExpires = now: a disabled account can be enabled again by
   * anyone with the right, an expired one still cannot log on. Both are read back. Missing
   * account = success; an account without our marker is NOT_MANAGED. Sessions already open
   * go on (Windows checks neither at a logged-on session): that is logoff's job.
   */
  async disable(name: string): Promise<void> {
    assertValidName(name);
    const r = await this.run('disable', { Name: name }, DisableResult);
    if (!r.exists) return;
    if (r.enabled) throw new AccountError('COMMAND_FAILED', `${name}: the account did not become disabled`);
    // A second of slack: the SAM may keep the expiry in whole seconds.
    if (r.expiresMs === null || r.expiresMs > r.nowMs + 1000) {
      throw new AccountError('COMMAND_FAILED', `${name}: the account did not expire (AccountExpires ${r.expiresMs === null ? 'never' : new Date(r.expiresMs).toISOString()})`);
    }
  }

  /**
   * Registers (or replaces) the scheduled task \jit-access\backstop-<name>: SYSTEM, at `at`
   * rounded up to the second, in UTC, running the constant helper jit-backstop.ps1 from the
   * helper directory with the account's name and SID (windows-backstop.ts). Read back field by
   * field; 'timer' or an AccountError (NOT_FOUND, NOT_MANAGED, COMMAND_FAILED), never
   * 'expiry-only': every Windows has Task Scheduler.
   */
  armBackstop(name: string, at: Date): Promise<'timer'> {
    return this.backstop.arm(name, at);
  }

  /** Unregisters the account's backstop task; a missing task or account is success. */
  disarmBackstop(name: string): Promise<void> {
    return this.backstop.disarm(name);
  }

  async setPassword(name: string, password: string): Promise<void> {
    assertValidName(name);
    assertPassword(password);
    await this.ensureHelper();
    await this.writePassword(name, password);
  }

  /**
   * Logs off every session of the account (WTSLogoffSession, console included, any edition)
   * and terminates every process it owns, pass after pass (windows-logoff.ts), waiting between
   * passes, until none is left. `ended` counts the sessions logged off and the processes
   * terminated.
   *
   * Whatever is still there after the last pass is an error (COMMAND_FAILED naming the sessions
   * and WTSLogoffSession's error codes), not a shrug: the removal sequence then stops before
   * delete and is retried (and alerted) by the caller. Why not delete anyway: a live session
   * keeps its logon token, Administrators membership included, after the account is deleted,
   * and nothing would ever end it. The account is already disabled and expired by then.
   */
  async logoff(name: string): Promise<LogoffResult> {
    assertValidName(name);
    return { ended: await logoffUntilDone(name, () => this.run('logoff', { Name: name }, LogoffPass), this.logoffDelays, this.sleep) };
  }

  /**
   * Deletes the account, by SID (Remove-LocalUser -SID), and nothing else: the profile is
   * purge's, so that nothing in it can keep the account alive. Missing account = success.
   */
  async delete(name: string): Promise<void> {
    assertValidName(name);
    await this.run('delete', { Name: name }, DeleteResult);
  }

  /**
   * Removes what a deleted account left (windows-purge.ts: its profile and its scheduled tasks),
   * found by the SID saved at creation. Only SIDs of local accounts (S-1-5-21-…, RID 1000 or
   * more) are accepted, never a built-in or well-known one. Waits while the profile is still
   * loaded (it unloads a little after logoff) and then reports LOGGED_IN; throws ACCESS_DENIED
   * or COMMAND_FAILED, naming what is left, while anything is. Does nothing if an account with
   * that SID exists (SIDs are never reused, so it is not a deleted account of ours).
   */
  async purge(account: AccountRef): Promise<void> {
    assertValidName(account.name);
    const m = LOCAL_ACCOUNT_SID.exec(account.id);
    if (!m || Number(m[1]) < 1000) throw new AccountError('COMMAND_FAILED', `${JSON.stringify(account.id)} is not the SID of a local account of ours`);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.run('purge', { Name: account.name, Sid: account.id }, PurgeResult);
        return;
      } catch (e) {
        const delay = this.purgeDelays[attempt];
        if (!(e instanceof AccountError) || e.code !== 'LOGGED_IN' || delay === undefined) throw e;
        await this.sleep(delay);
      }
    }
  }

  async listManaged(): Promise<AccountInfo[]> {
    const r = await this.run('list', {}, ListResult);
    return r.users.map(toInfo).filter((i) => i.managed);
  }

  /**
   * Uninstall. Windows has no marker group: the description tag is the marker, and it goes
   * with each account. So this refuses (COMMAND_FAILED, "still has members", like the Unix
   * backends) while accounts carrying the tag remain, and otherwise removes what this backend
   * put on the machine besides accounts: every backstop task in \jit-access\ and that task
   * folder, the backstop helper, the password helper and their directory (when empty).
   */
  async dropMarker(): Promise<void> {
    const left = await this.listManaged();
    if (left.length > 0) {
      throw new AccountError('COMMAND_FAILED', `the jit-access marker (account description) still has members: ${left.map((i) => i.name).join(', ')}`);
    }
    this.helperReady = undefined;
    await this.backstop.drop();
    await this.run('dropHelper', { Dir: this.helperDir, File: HELPER_FILE }, OkResult);
  }

  /** Ends the PowerShell session. */
  async dispose(): Promise<void> {
    await this.exec.dispose();
  }

  private async run<T extends z.ZodType>(op: Op, params: Record<string, PsParam>, schema: T): Promise<z.infer<T>> {
    const r = await this.exec.invoke(sessionScript(op, params));
    return parseResult(op, r, schema);
  }

  /** Installs the helper once per backend; a failed install is retried on the next call. */
  private ensureHelper(): Promise<void> {
    this.helperReady ??= this.installHelper().catch((e: unknown) => {
      this.helperReady = undefined;
      throw e;
    });
    return this.helperReady;
  }

  private async installHelper(): Promise<void> {
    const r = await this.run('installHelper', { Dir: this.helperDir, File: HELPER_FILE, Lines: PASSWORD_HELPER_LINES }, InstallResult);
    const want = createHash('sha256').update(passwordHelperText(), 'ascii').digest('hex');
    if (r.sha256.toLowerCase() !== want) throw new AccountError('COMMAND_FAILED', `password helper at ${r.path} does not have the expected content`);
  }

  /** Runs the helper with the password on stdin (see PsExecutor, PASSWORD PATH). */
  private async writePassword(name: string, password: string): Promise<void> {
    const r = await this.exec.runFile(this.helperPath, ['-Name', name], `${password}\r\n`);
    const clean = { ...r, stdout: redact(r.stdout, password), stderr: redact(r.stderr, password) };
    if (resultJson(clean.stdout) === undefined) {
      // The helper did not even start its work (missing file, policy, bad argument):
      // reinstall it next time.
      this.helperReady = undefined;
      throw new AccountError('COMMAND_FAILED', `password helper exited ${r.exitCode}: ${firstLine(clean.stderr)}`);
    }
    parseResult('setPassword', clean, OkResult);
  }
}

function toInfo(u: PsUser): AccountInfo {
  return {
    name: u.name,
    id: u.sid,
    enabled: u.enabled,
    managed: u.description.startsWith(MARKER),
    groups: GROUPS.filter((g) => u.groups.includes(g)),
  };
}
