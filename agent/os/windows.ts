/**
 * Windows local accounts through Microsoft.PowerShell.LocalAccounts, driven from one
 * long-lived PowerShell session (node-powershell). The PowerShell texts live in
 * windows-scripts.ts; read its header for how values are quoted and why scripts look as they do.
 *
 * Nothing here was run on Windows: cmdlet behaviour comes from documentation and the
 * LocalAccounts source (shared notes §1, 📄). windows.test.ts checks our script texts (parsed
 * by a PowerShell grammar), our parsing of their output and our error mapping, against a
 * recorded, simulated Windows.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { PowerShell } from 'node-powershell';
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
  type CreateAccountSpec,
  type LogoffResult,
} from './backend.ts';
import {
  DESCRIPTION_MAX,
  GROUP_SIDS,
  HELPER_FILE,
  MARKER,
  PASSWORD_HELPER_LINES,
  PWSH_IMPORT,
  RESULT_PREFIX,
  assertTransportSafe,
  passwordHelperText,
  sessionScript,
  type Op,
  type PsParam,
} from './windows-scripts.ts';

// ---------------------------------------------------------------------------------------------
// Executor: where scripts run
// ---------------------------------------------------------------------------------------------

/** What a script printed. */
export interface PsResult {
  stdout: string;
  stderr: string;
  /** Something was written to stderr. */
  hadErrors: boolean;
}

export interface PsFileResult extends PsResult {
  exitCode: number;
}

/**
 * Runs PowerShell for the backend. The real one is NodePowerShellExecutor; tests inject a
 * recording one.
 *
 * PASSWORD PATH. Scripts for the long-lived session never carry a secret. The two steps that
 * need the password (create, setPassword) run `runFile`: a one-off `powershell.exe -File
 * <helper> -Name <name>` whose stdin carries the password, read by the helper character by
 * character (notes §1.7). Why not the long-lived session's own stdin: that stream is the
 * session's command channel (`-Command -`): node-powershell writes each command followed by
 * its framing commands in one go, so there is no moment at which a `[Console]::In.ReadLine()`
 * in our script would read the password rather than the next command, and the host may
 * already have buffered those lines. Worse, on any framing slip the password line would be
 * *executed* as a command: echoed in an error on stderr (which node-powershell keeps in
 * `history`), and recorded by Script Block Logging [W11]. A dedicated child's stdin is data
 * only. The cost, one process start per password, is paid twice per grant.
 */
export interface PsExecutor {
  /** Runs a script in the long-lived session. The script never contains a secret. */
  invoke(script: string): Promise<PsResult>;
  /** Runs the script file `file` with `args` in a one-off process; `stdin` is its only secret channel. */
  runFile(file: string, args: string[], stdin: string): Promise<PsFileResult>;
  /** Ends the session. */
  dispose(): Promise<void>;
}

/** The one-off helper's command line after the executable. The password is never in it. */
export function helperArgv(file: string, args: string[]): string[] {
  // ⚠️ -ExecutionPolicy Bypass loses against a policy set by Group Policy (MachinePolicy or
  // UserPolicy scope); a site enforcing AllSigned must sign the helper.
  return ['-NoLogo', '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', file, ...args];
}

/**
 * 64-bit Windows PowerShell 5.1: LocalAccounts is missing from the 32-bit one (notes §1 [W1]).
 * A 32-bit process sees SysWOW64 when it names System32 (file system redirection); Sysnative
 * reaches the real System32 from there.
 */
export function windowsPowerShellPath(env: NodeJS.ProcessEnv = process.env, arch: string = process.arch): string {
  const root = env.SystemRoot ?? env.windir ?? 'C:\\Windows';
  const system = arch === 'ia32' && env.PROCESSOR_ARCHITEW6432 ? 'Sysnative' : 'System32';
  return path.win32.join(root, system, 'WindowsPowerShell', 'v1.0', 'powershell.exe');
}

export interface NodePowerShellExecutorOptions {
  /** 'powershell' (default): 64-bit Windows PowerShell 5.1. 'pwsh': PowerShell 7 from PATH. */
  shell?: 'powershell' | 'pwsh';
  /** Session executable, overriding `shell` (a full path). */
  executable?: string;
  /** Executable of the password helper; default 64-bit Windows PowerShell (LocalAccounts is native there). */
  helperExecutable?: string;
  /** Per-command limit; a command that exceeds it costs the session (default 5 minutes). */
  invocationTimeoutMs?: number;
  /** Limit for one helper run (default 2 minutes). */
  helperTimeoutMs?: number;
}

/** node-powershell keeps these private; we read them defensively (see `session`). */
interface ShellInternals {
  exitPromise?: Promise<unknown>;
}

/**
 * The real executor: one PowerShell process for the agent's lifetime, recreated on the next
 * call after it dies or a command times out. Calls are serialized.
 */
export class NodePowerShellExecutor implements PsExecutor {
  private readonly executable: string;
  private readonly helperExecutable: string;
  private readonly isPwsh: boolean;
  private readonly invocationTimeoutMs: number;
  private readonly helperTimeoutMs: number;
  private shell: PowerShell | undefined;
  private alive = false;
  private queue: Promise<unknown> = Promise.resolve();
  /** Number of shells started so far (tests watch recovery with it). */
  started = 0;

  constructor(opts: NodePowerShellExecutorOptions = {}) {
    this.isPwsh = opts.shell === 'pwsh';
    this.executable = opts.executable ?? (this.isPwsh ? 'pwsh' : windowsPowerShellPath());
    this.helperExecutable = opts.helperExecutable ?? windowsPowerShellPath();
    this.invocationTimeoutMs = opts.invocationTimeoutMs ?? 300_000;
    this.helperTimeoutMs = opts.helperTimeoutMs ?? 120_000;
    // Why refuse: node-powershell lets $NODE_POWERSHELL override any executable we name
    // (notes §2), which would hand our administrator session to whatever it points at.
    if (process.env.NODE_POWERSHELL && process.env.NODE_POWERSHELL !== this.executable) {
      throw new AccountError('COMMAND_FAILED', 'NODE_POWERSHELL is set and would override the PowerShell executable');
    }
  }

  async invoke(script: string): Promise<PsResult> {
    try {
      assertTransportSafe(script);
    } catch (e) {
      throw new AccountError('COMMAND_FAILED', (e as Error).message);
    }
    return this.serialized(() => this.invokeNow(script, true));
  }

  runFile(file: string, args: string[], stdin: string): Promise<PsFileResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.helperExecutable, helperArgv(file, args), { stdio: 'pipe', windowsHide: true });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => child.kill(), this.helperTimeoutMs);
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new AccountError('COMMAND_FAILED', `cannot start ${this.helperExecutable}: ${e.message}`));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        const stderr = Buffer.concat(err).toString('utf8');
        resolve({ exitCode: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr, hadErrors: stderr.length > 0 });
      });
      // Why ignore: a helper that exits before reading gives EPIPE; its output reports why.
      child.stdin.on('error', () => {});
      child.stdin.end(stdin);
    });
  }

  async dispose(): Promise<void> {
    await this.serialized(() => this.discard());
  }

  /** Whether the current shell is believed to be running (tests wait on it). */
  get isAlive(): boolean {
    return this.shell !== undefined && this.alive;
  }

  /** node-powershell's command history length (tests check it stays empty). */
  get historyLength(): number {
    return this.shell?.history.length ?? 0;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  private async session(): Promise<PowerShell> {
    if (this.shell && this.alive) return this.shell;
    await this.discard();
    if (process.env.NODE_POWERSHELL && process.env.NODE_POWERSHELL !== this.executable) {
      throw new AccountError('COMMAND_FAILED', 'NODE_POWERSHELL is set and would override the PowerShell executable');
    }
    // Imported on first use: agent/service/windows.ts loads this module on every OS, and only a
    // Windows agent ever opens a session.
    const { PowerShell } = await import('node-powershell');
    const ps = new PowerShell({
      executable: this.executable,
      executableOptions: { '-NoProfile': true, '-NonInteractive': true },
      spawnOptions: { windowsHide: true },
      invocationTimeout: this.invocationTimeoutMs,
      // We read stderr ourselves; a warning there must not throw away the result line.
      throwOnInvocationError: false,
    });
    this.shell = ps;
    this.alive = true;
    this.started++;
    const dead = () => {
      if (this.shell === ps) this.alive = false;
    };
    // Why: when the shell dies while idle, child-shell rejects a promise nobody awaits, an
    // unhandledRejection (notes §2, checked). Handling it also tells us to start a new shell.
    (ps as unknown as ShellInternals).exitPromise?.then(dead, dead);
    // A later write to a dead shell's stdin must not become an uncaught 'error' event.
    ps.streams.stdin.on('error', dead);
    if (this.isPwsh) {
      const r = await this.send(ps, PWSH_IMPORT);
      if (r.hadErrors) {
        await this.discard();
        throw new AccountError('COMMAND_FAILED', `cannot import LocalAccounts into pwsh: ${firstLine(r.stderr)}`);
      }
    }
    return ps;
  }

  private async invokeNow(script: string, mayRetry: boolean): Promise<PsResult> {
    try {
      return await this.send(await this.session(), script);
    } catch (e) {
      // Nothing was sent when the shell was already gone: safe to run it in a new one.
      if (mayRetry && e instanceof Error && /after process exited/.test(e.message)) {
        this.alive = false;
        return this.invokeNow(script, false);
      }
      this.alive = false;
      await this.discard();
      if (e instanceof AccountError) throw e;
      throw new AccountError('COMMAND_FAILED', `PowerShell session failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private async send(ps: PowerShell, script: string): Promise<PsResult> {
    try {
      // The trailing newline plus node-powershell's own EOL make the empty line that ends a
      // multi-line command under `-Command -` (windows-scripts.ts, TRANSPORT).
      const rec = await ps.invoke(`${script}\n`);
      // Neither stream read: the command timed out or the shell exited mid-command. The
      // framing is lost either way (late output would be taken for the next command's).
      if (rec.stdout === undefined && rec.stderr === undefined) {
        this.alive = false;
        await this.discard();
        throw new AccountError('COMMAND_FAILED', 'PowerShell command timed out or the session ended');
      }
      const stderr = rec.stderr?.toString('utf8') ?? '';
      return { stdout: rec.stdout?.toString('utf8') ?? '', stderr, hadErrors: rec.hadErrors };
    } finally {
      // Why: child-shell keeps every command text and its output in `history` forever.
      ps.history.splice(0);
    }
  }

  private async discard(): Promise<void> {
    const ps = this.shell;
    this.shell = undefined;
    this.alive = false;
    if (ps) await ps.dispose().catch(() => {});
  }
}

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
const LogoffOutput = z.object({ ok: z.literal(true), sessions: z.number(), sessionsFailed: z.number().optional(), processes: z.number(), failed: z.number() });
const DeleteResult = z.object({ ok: z.literal(true), deleted: z.boolean() });
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

function firstLine(s: string): string {
  return s.trim().split(/\r?\n/)[0]?.slice(0, 300) ?? '';
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
  /** Waits between delete attempts while the profile is still loaded (default 1, 2, 4, 8, 15 s). */
  deleteRetryDelaysMs?: number[];
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Local accounts through Microsoft.PowerShell.LocalAccounts. The ownership marker is the
 * account description (`jit-access grant=<id>`); every mutating step except create checks it
 * in the same script that mutates, so there is no gap between check and change.
 */
export class WindowsBackend implements AccountBackend {
  readonly os = 'windows';
  private readonly exec: PsExecutor;
  private readonly helperDir: string;
  private readonly delays: number[];
  private readonly sleep: (ms: number) => Promise<void>;
  private helperReady: Promise<void> | undefined;

  constructor(opts: WindowsBackendOptions = {}) {
    this.exec = opts.executor ?? new NodePowerShellExecutor({ shell: opts.shell });
    this.helperDir = opts.helperDir ?? path.win32.join(process.env.ProgramFiles ?? 'C:\\Program Files', 'jit-access', 'ps');
    if (!path.win32.isAbsolute(this.helperDir) || !/^[A-Za-z]:\\/.test(this.helperDir) || !/^[\x20-\x7E]+$/.test(this.helperDir)) {
      throw new Error(`helperDir must be an absolute drive path in printable ASCII: ${this.helperDir}`);
    }
    this.delays = opts.deleteRetryDelaysMs ?? [1000, 2000, 4000, 8000, 15000];
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

  /**
   * Enable: set AccountExpires to `expiresAt` (the OS stops new logons then, even if the
   * agent is dead), then Enable-LocalUser. Disable: Disable-LocalUser.
   */
  async setEnabled(name: string, enabled: boolean, expiresAt?: Date): Promise<void> {
    assertValidName(name);
    const r = enabled
      ? await this.run('enable', { Name: name, ExpiresMs: expiryMs(expiresAt) }, EnabledResult)
      : await this.run('disable', { Name: name }, EnabledResult);
    if (r.enabled !== enabled) throw new AccountError('COMMAND_FAILED', `${name}: the account did not become ${enabled ? 'enabled' : 'disabled'}`);
  }

  async setPassword(name: string, password: string): Promise<void> {
    assertValidName(name);
    assertPassword(password);
    await this.ensureHelper();
    await this.writePassword(name, password);
  }

  /**
   * Logs off the account's sessions (quser + logoff), then terminates every process it owns.
   * `ended` counts both. A session logoff.exe could not end is tolerated (the console session,
   * notes §1.4 [W5] ⚠️): its processes are terminated anyway. A process that could not be
   * terminated is reported as COMMAND_FAILED.
   */
  async logoff(name: string): Promise<LogoffResult> {
    assertValidName(name);
    const r = await this.run('logoff', { Name: name }, LogoffOutput);
    if (r.failed > 0) throw new AccountError('COMMAND_FAILED', `${name}: ${r.failed} process(es) could not be terminated`);
    return { ended: r.sessions + r.processes };
  }

  /** Deletes the profile (Win32_UserProfile) and the account. Missing account = success. */
  async delete(name: string): Promise<void> {
    assertValidName(name);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.run('delete', { Name: name }, DeleteResult);
        return;
      } catch (e) {
        const delay = this.delays[attempt];
        if (!(e instanceof AccountError) || e.code !== 'LOGGED_IN' || delay === undefined) throw e;
        await this.sleep(delay);
      }
    }
  }

  async listManaged(): Promise<AccountInfo[]> {
    const r = await this.run('list', {}, ListResult);
    return r.users.map(toInfo).filter((i) => i.managed);
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
