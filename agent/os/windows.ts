/**
 * Windows local accounts through Microsoft.PowerShell.LocalAccounts, driven from one
 * long-lived PowerShell session (node-powershell). The PowerShell texts live in
 * windows-scripts.ts; read its header for how values are quoted and why scripts look as they do.
 *
 * Removal (agent/removal.ts runs it): `disable` (Disable-LocalUser and AccountExpires = now),
 * `logoff` (WTSLogoffSession for every session, then every process of the SID, pass after pass),
 * `delete` (the account alone, by SID), `purge` (the profile and scheduled tasks, by the saved
 * SID, retried on its own). The executor is in windows-exec.ts.
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
  ACCOUNT_ERROR_CODES,
  AccountError,
  assertValidName,
  finishCreate,
  type AccountBackend,
  type AccountErrorCode,
  type AccountInfo,
  type AccountRef,
  type CreateAccountSpec,
  type LogoffResult,
} from './backend.ts';
import { firstLine, NodePowerShellExecutor, type PsExecutor, type PsResult } from './windows-exec.ts';
import {
  DESCRIPTION_MAX,
  GROUP_SIDS,
  HELPER_FILE,
  MARKER,
  PASSWORD_HELPER_LINES,
  RESULT_PREFIX,
  passwordHelperText,
  sessionScript,
  type Op,
  type PsParam,
} from './windows-scripts.ts';

// The executor moved to windows-exec.ts; these names stay importable from here.
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
// Output parsing and error mapping
// ---------------------------------------------------------------------------------------------

/**
 * A list as Windows PowerShell 5.1's ConvertTo-Json may write it: an array, null for an empty
 * pipeline, a bare item for a one-item pipeline, or {"value":[…],"Count":n} for an array that
 * went through the pipeline wrapped in a PSObject.
 */
const psList = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => {
    if (v === null || v === undefined) return [];
    if (Array.isArray(v)) return v;
    if (typeof v === 'object' && Array.isArray((v as { value?: unknown }).value)) return (v as { value: unknown[] }).value;
    return [v];
  }, z.array(item));

const PsUser = z.object({
  name: z.string(),
  sid: z.string().regex(/^S-1-\d+(-\d+)+$/),
  enabled: z.boolean(),
  description: z.string(),
  groups: psList(z.string()),
});
type PsUser = z.infer<typeof PsUser>;

/** The error record a script's catch block prints. */
export const PsErrorInfo = z.object({
  type: z.string().nullish(),
  fqid: z.string().nullish(),
  category: z.string().nullish(),
  message: z.string().nullish(),
  hresult: z.number().nullish(),
  native: z.string().nullish(),
});
export type PsErrorInfo = z.infer<typeof PsErrorInfo>;

const Failure = z.object({
  ok: z.literal(false),
  code: z.enum(ACCOUNT_ERROR_CODES).optional(),
  message: z.string().optional(),
  error: PsErrorInfo.optional(),
});

const LookupResult = z.object({ ok: z.literal(true), user: PsUser.nullable() });
const UserResult = z.object({ ok: z.literal(true), user: PsUser });
const ListResult = z.object({ ok: z.literal(true), users: psList(PsUser) });
const OkResult = z.object({ ok: z.literal(true) });
const EnabledResult = z.object({ ok: z.literal(true), enabled: z.boolean() });
const DisableResult = z.union([
  z.object({ ok: z.literal(true), exists: z.literal(false) }),
  z.object({ ok: z.literal(true), exists: z.literal(true), enabled: z.boolean(), expiresMs: z.number().nullable(), nowMs: z.number() }),
]);
const LogoffPass = z.object({
  ok: z.literal(true),
  sessions: z.number(),
  processes: z.number(),
  /** Sessions of the account still there after the pass, with WTSLogoffSession's error (0: it said yes). */
  sessionsLeft: psList(z.object({ id: z.number(), error: z.number() })),
  processesLeft: z.number(),
});
const DeleteResult = z.object({ ok: z.literal(true), deleted: z.boolean() });
const PurgeResult = z.object({ ok: z.literal(true), skipped: z.boolean() });
const InstallResult = z.object({ ok: z.literal(true), path: z.string(), sha256: z.string() });

// HRESULTs seen as numbers (signed 32-bit, as [int]$e.HResult prints them).
const E_ACCESSDENIED = 0x80070005 | 0; // Win32 ERROR_ACCESS_DENIED
const WBEM_E_ACCESS_DENIED = 0x80041003 | 0;
const E_SHARING_VIOLATION = 0x80070020 | 0; // ERROR_SHARING_VIOLATION: a file of the profile is open
const E_BUSY = 0x800700aa | 0; // ERROR_BUSY

/**
 * Maps a PowerShell error record to an AccountError code. Types and error ids are
 * language-neutral (FullyQualifiedErrorId is "<ErrorId>,<command type>", ErrorId being the
 * LocalAccounts exception type name without "Exception"); messages are localized, so they are
 * only a last resort, for the "in use" failures that have no id of their own.
 */
export function mapPsError(e: PsErrorInfo): AccountErrorCode {
  const type = (e.type ?? '').split('.').pop() ?? '';
  const id = (e.fqid ?? '').split(',')[0] ?? '';
  const is = (...names: string[]) => names.some((n) => type === `${n}Exception` || id === n);
  if (is('UserExists', 'NameInUse', 'GroupExists')) return 'ALREADY_EXISTS';
  if (is('UserNotFound', 'PrincipalNotFound')) return 'NOT_FOUND';
  if (is('GroupNotFound')) return 'UNSUPPORTED_GROUP';
  if (is('InvalidName')) return 'INVALID_NAME';
  if (
    is('AccessDenied', 'UnauthorizedAccess') ||
    e.category === 'PermissionDenied' ||
    e.native === 'AccessDenied' ||
    e.hresult === E_ACCESSDENIED ||
    e.hresult === WBEM_E_ACCESS_DENIED
  ) {
    return 'ACCESS_DENIED';
  }
  if (e.hresult === E_SHARING_VIOLATION || e.hresult === E_BUSY || /logged (on|in)|in use|being used by another process/i.test(e.message ?? '')) {
    return 'LOGGED_IN';
  }
  return 'COMMAND_FAILED';
}

/** The last `jit-result` line's JSON, or undefined when the script printed none. */
function resultJson(stdout: string): unknown {
  const line = stdout
    .split(/\r?\n/)
    .reverse()
    .find((l) => l.startsWith(RESULT_PREFIX));
  if (line === undefined) return undefined;
  try {
    return JSON.parse(line.slice(RESULT_PREFIX.length));
  } catch {
    throw new AccountError('COMMAND_FAILED', 'PowerShell printed a result that is not JSON');
  }
}

/** Parses a script's result with `schema`, turning `ok:false` into the matching AccountError. */
function parseResult<T extends z.ZodType>(what: string, r: PsResult, schema: T): z.infer<T> {
  const json = resultJson(r.stdout);
  if (json === undefined) {
    throw new AccountError('COMMAND_FAILED', `${what}: no result from PowerShell${r.stderr ? `: ${firstLine(r.stderr)}` : ''}`);
  }
  const failure = Failure.safeParse(json);
  if (failure.success) {
    const f = failure.data;
    if (f.code) throw new AccountError(f.code, `${what}: ${f.message ?? f.code}`);
    const e = f.error ?? {};
    throw new AccountError(mapPsError(e), `${what}: ${e.fqid ?? e.type ?? 'error'}: ${firstLine(e.message ?? '')}`);
  }
  const ok = schema.safeParse(json);
  if (!ok.success) throw new AccountError('COMMAND_FAILED', `${what}: unexpected result from PowerShell`);
  return ok.data;
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/**
 * The ownership marker for a grant: `jit-access grant=<id>`, cut to the documented 48
 * characters of a description (notes §1 [W1]). Why cut: the server's grant ids are UUIDs
 * (36 characters), 53 with the marker; the first 31 characters still identify a grant for a
 * human, and nothing reads the id back (ownership is the marker prefix).
 *
 * Printable ASCII only: quotes, `$(…)` and backticks are fine (psQuote makes
 * them literal), but the session transport is ASCII-only (windows-scripts.ts, TRANSPORT).
 */
export function descriptionFor(grantId: string): string {
  if (!/^[\x20-\x7E]+$/.test(grantId)) {
    throw new AccountError('COMMAND_FAILED', 'grant id unfit for the account description (printable ASCII only)');
  }
  return (MARKER + grantId).slice(0, DESCRIPTION_MAX);
}

/**
 * Passwords: printable ASCII, 1–127 characters (New-LocalUser's documented maximum).
 * Why ASCII: the helper's stdin is decoded with the console code page, so any other character
 * could arrive as a different one and set a password nobody knows. Why no CR/LF: they end it.
 */
function assertPassword(password: string): void {
  if (!/^[\x20-\x7E]{1,127}$/.test(password)) {
    throw new AccountError('COMMAND_FAILED', 'password must be 1-127 printable ASCII characters');
  }
}

function expiryMs(at: Date | undefined): number {
  const ms = at?.getTime();
  if (ms === undefined || !Number.isSafeInteger(ms) || ms <= 0) throw new AccountError('COMMAND_FAILED', 'enabling needs a valid expiresAt (the OS-level backstop)');
  return ms;
}

/** A local account's SID: the machine's S-1-5-21-x-y-z domain, then the RID (captured). */
const LOCAL_ACCOUNT_SID = /^S-1-5-21-\d{1,10}-\d{1,10}-\d{1,10}-(\d{1,10})$/;

function groupSid(group: Group): string {
  const sid = (GROUP_SIDS as Partial<Record<string, string>>)[group];
  if (!sid) throw new AccountError('UNSUPPORTED_GROUP', `no Windows group for ${String(group)}`);
  return sid;
}

/** Never let a password into an error message, whatever a child printed. */
function redact(message: string, secret: string): string {
  return message.split(secret).join('***');
}

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
  private readonly exec: PsExecutor;
  private readonly helperDir: string;
  private readonly purgeDelays: number[];
  private readonly logoffDelays: number[];
  private readonly sleep: (ms: number) => Promise<void>;
  private helperReady: Promise<void> | undefined;

  constructor(opts: WindowsBackendOptions = {}) {
    this.exec = opts.executor ?? new NodePowerShellExecutor({ shell: opts.shell });
    this.helperDir = opts.helperDir ?? path.win32.join(process.env.ProgramFiles ?? 'C:\\Program Files', 'jit-access', 'ps');
    if (!path.win32.isAbsolute(this.helperDir) || !/^[A-Za-z]:\\/.test(this.helperDir) || !/^[\x20-\x7E]+$/.test(this.helperDir)) {
      throw new Error(`helperDir must be an absolute drive path in printable ASCII: ${this.helperDir}`);
    }
    this.purgeDelays = opts.purgeRetryDelaysMs ?? [1000, 2000, 4000, 8000, 15000];
    this.logoffDelays = opts.logoffRetryDelaysMs ?? [500, 1000, 2000, 4000, 8000];
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
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
    let ended = 0;
    for (let attempt = 0; ; attempt++) {
      const r = await this.run('logoff', { Name: name }, LogoffPass);
      ended += r.sessions + r.processes;
      if (r.sessionsLeft.length === 0 && r.processesLeft === 0) return { ended };
      const delay = this.logoffDelays[attempt];
      if (delay === undefined) {
        const sessions = r.sessionsLeft.map((s) => `session ${s.id}${s.error ? ` (WTSLogoffSession error ${s.error})` : ''}`);
        const processes = r.processesLeft ? [`${r.processesLeft} process(es) still running`] : [];
        throw new AccountError('COMMAND_FAILED', `${name}: could not be logged off: ${[...sessions, ...processes].join(', ')}`);
      }
      await this.sleep(delay);
    }
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
   * put on the machine besides accounts: the password helper and its directory (when empty).
   */
  async dropMarker(): Promise<void> {
    const left = await this.listManaged();
    if (left.length > 0) {
      throw new AccountError('COMMAND_FAILED', `the jit-access marker (account description) still has members: ${left.map((i) => i.name).join(', ')}`);
    }
    this.helperReady = undefined;
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
