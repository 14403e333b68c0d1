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
}

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
export const run: Runner = (file, argv, { stdin, okCodes = [0], env } = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: 'pipe', ...(env ? { env } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      const result = { code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (okCodes.includes(result.code)) resolve(result);
      else reject(new ExecError(file, result));
    });
    // Why ignore: a child that exits before reading stdin gives EPIPE; its exit code reports the failure.
    child.stdin.on('error', () => {});
    child.stdin.end(stdin); // closed at once without stdin, so nothing waits for input
  });
