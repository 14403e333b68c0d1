/**
 * Where the Windows backend's PowerShell runs (agent/os/windows.ts): the long-lived session
 * (node-powershell) and the one-off password helper process.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { PowerShell } from 'node-powershell';
import { AccountError } from './backend.ts';
import { assertTransportSafe } from './windows-quote.ts';
import { PWSH_IMPORT } from './windows-scripts.ts';
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

/**
 * PowerShell 7 where its installer puts it, under %ProgramFiles% (writable by Administrators
 * only). Why not `pwsh` from PATH: a SYSTEM service would run the first pwsh.exe found there,
 * and PATH may hold folders a standard user can write.
 */
export function pwshPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.win32.join(env.ProgramW6432 ?? env.ProgramFiles ?? 'C:\\Program Files', 'PowerShell', '7', 'pwsh.exe');
}

export interface NodePowerShellExecutorOptions {
  /** 'powershell' (default): 64-bit Windows PowerShell 5.1. 'pwsh': PowerShell 7 (pwshPath). */
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
    this.executable = opts.executable ?? (this.isPwsh ? pwshPath() : windowsPowerShellPath());
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
    // Imported on first use: only a Windows agent ever opens a session.
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

/** First line of a text, cut to 300 characters (for error messages). */
export function firstLine(s: string): string {
  return s.trim().split(/\r?\n/)[0]?.slice(0, 300) ?? '';
}
