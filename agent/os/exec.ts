import { spawn } from 'node:child_process';

export interface RunResult {
  /** Exit code; -1 when the process was killed by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. The only place a secret may go. */
  stdin?: string;
  /** Exit codes that count as success (default `[0]`); any other rejects with `ExecError`. */
  okCodes?: number[];
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Killed (SIGKILL) and failed after this long (default RUN_TIMEOUT_MS). */
  timeoutMs?: number;
}

/**
 * No OS command may hold the agent longer than this: a hung one (a lock never released, a dead
 * D-Bus) would otherwise keep every later step, every removal included, waiting forever. userdel
 * and usermod give up on a held lock after 15 s by themselves; PowerShell's cold start is a few s.
 */
export const RUN_TIMEOUT_MS = 60_000;

/** A command failed. The message names the program and its stderr, never its argv or stdin. */
export class ExecError extends Error {
  constructor(
    readonly file: string,
    readonly result: RunResult,
  ) {
    super(`${file} exited ${result.code}: ${result.stderr.trim()}`);
    this.name = 'ExecError';
  }
}

export type Runner = (file: string, argv: string[], opts?: RunOptions) => Promise<RunResult>;

/**
 * Runs `file` with `argv` directly (no shell, so nothing in argv is ever
 * interpreted) and collects its output. Does not log.
 */
export const run: Runner = (file, argv, { stdin, okCodes = [0], env, timeoutMs = RUN_TIMEOUT_MS } = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: 'pipe', ...(env ? { env } : {}) });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
      // A grandchild may hold the pipes open: 'close' must not wait for it.
      child.stdout.destroy();
      child.stderr.destroy();
    }, timeoutMs);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString() + (timedOut ? `\n(killed: no answer within ${timeoutMs / 1000} s)` : '');
      const result = { code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr };
      if (okCodes.includes(result.code)) resolve(result);
      else reject(new ExecError(file, result));
    });
    // Why ignore: a child that exits before reading stdin gives EPIPE; its exit code reports the failure.
    child.stdin.on('error', () => {});
    child.stdin.end(stdin); // closed at once without stdin, so nothing waits for input
  });
