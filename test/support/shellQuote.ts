/**
 * Renders argv as a POSIX shell line and checks such lines with the real bash.
 *
 * Why in tests: backends spawn argv directly (no shell); rendering every recorded command as
 * a shell line that a human could paste — and that bash parses back to the very same argv —
 * shows each value is exactly one argument and nothing in it would be interpreted.
 */
import { spawnSync } from 'node:child_process';

/** Words bash takes literally unquoted. No '=' (an assignment as a first word), '~', globs, braces. */
const SAFE = /^[A-Za-z0-9_@%+:,./-]+$/;

/** One argument, single-quoted unless plainly safe; an inner ' becomes '\''. */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new Error('a NUL byte cannot be part of an argv element');
  return SAFE.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** argv (program first) as one shell line. */
export function shellLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** `bash -n` on a script (one command per line): null when it parses, else bash's complaint. */
export function bashSyntaxError(script: string): string | null {
  const r = spawnSync('bash', ['--noprofile', '--norc', '-n'], { input: script, encoding: 'utf8' });
  if (r.error) throw r.error;
  return r.status === 0 ? null : r.stderr.trim() || `bash -n exited ${r.status}`;
}

/**
 * What bash makes of each line's words: runs `printf '%s\0' WORDS` per line, so nothing is
 * executed but printf, and returns the words bash passed, per line.
 */
export function bashWords(lines: readonly string[]): string[][] {
  const script = lines.map((l) => `printf '%s\\0' ${l}; printf '\\1'`).join('\n');
  const r = spawnSync('bash', ['--noprofile', '--norc'], { input: script, encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`bash exited ${r.status}: ${r.stderr}`);
  return r.stdout.split('\x01').slice(0, lines.length).map((rec) => rec.split('\0').slice(0, -1));
}
