/**
 * Printing and doing, for install and uninstall: every step is printed before it is done;
 * in a dry run it is only printed. Read-only probes run in a dry run too, so that the plan
 * printed is the one a real run would follow.
 */
import path from 'node:path';
import type { RunResult } from '../os/exec.ts';
import type { ServiceHost, ServicePlatform } from './host.ts';
import { windowsCommandLine } from './windows.ts';

export class Steps {
  constructor(
    private readonly host: ServiceHost,
    readonly dryRun: boolean,
    private readonly command_: string,
  ) {}

  say(text: string): void {
    this.host.print(`${this.command_}: ${text}`);
  }

  /** The last line: where to look, or that a dry run changed nothing. */
  done(text: string): void {
    this.say(this.dryRun ? 'dry run: nothing was changed' : `done: ${text}`);
  }

  /** Prints what is about to happen, then does it (not in a dry run). */
  async act(what: string, action: () => Promise<unknown>): Promise<void> {
    this.say(this.dryRun ? `[dry run] would ${what}` : what);
    if (!this.dryRun) await action();
  }

  /** A command that changes something: printed, then run (not in a dry run). */
  async command(argv: string[], okCodes?: number[], what?: string): Promise<void> {
    const line = `$ ${displayArgv(argv, this.host.platform)}`;
    await this.act(what ? `${what}\n    ${line}` : line, () => this.host.run(argv[0]!, argv.slice(1), okCodes ? { okCodes } : {}));
  }

  /** A read-only command: printed and run, also in a dry run. */
  async probe(argv: string[], okCodes: number[], what?: string): Promise<RunResult> {
    this.say(`check${what ? ` ${what}` : ''}: $ ${displayArgv(argv, this.host.platform)}`);
    return this.host.run(argv[0]!, argv.slice(1), { okCodes });
  }
}

/**
 * For reading only (nothing runs through a shell), quoted so that it can be pasted:
 * the Windows command-line rules on Windows, POSIX shell single quotes elsewhere.
 * A PowerShell -EncodedCommand argument is shown shortened (the script is in the source).
 */
export function displayArgv(argv: string[], platform: ServicePlatform): string {
  if (platform === 'win32') {
    const shown = argv.map((a, i) => (argv[i - 1] === '-EncodedCommand' && a.length > 40 ? `${a.slice(0, 24)}…` : a));
    return windowsCommandLine(shown);
  }
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export function pathFor(platform: ServicePlatform): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
