/**
 * How values enter the PowerShell texts of the Windows backend, and what the session's stdin
 * can carry (windows-scripts.ts, TRANSPORT). Kept apart so that every script module
 * (windows-scripts.ts, windows-logoff.ts, windows-purge.ts) can use it without importing the
 * others.
 */

/** Characters PowerShell treats as a single quote: ' and U+2018–U+201B (notes §2 [W12]). */
const SINGLE_QUOTES = /['\u2018-\u201B]/g;
/** Control characters (C0, DEL, C1) and the Unicode line/paragraph separators. */
const CONTROL = /[\u0000-\u001F\u007F-\u009F\u2028\u2029]/;
/** Half of a surrogate pair without its other half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The one way a value enters a script: a single-quoted PowerShell literal, with every
 * single-quote character doubled, including the typographic ones U+2018–U+201B, which
 * PowerShell also accepts as quotes (notes §2). Nothing is expanded inside such a literal.
 *
 * Rejects control characters (a newline would be a line of the stdin protocol, see TRANSPORT)
 * and lone surrogates. Non-ASCII is quoted correctly here but refused later by
 * `assertTransportSafe`, so callers validate values to ASCII first.
 */
export function psQuote(value: string): string {
  if (CONTROL.test(value) || LONE_SURROGATE.test(value)) {
    throw new Error('psQuote: control characters and lone surrogates cannot be quoted safely');
  }
  return `'${value.replace(SINGLE_QUOTES, (q) => q + q)}'`;
}

/** An integer literal; only safe integers (no exponent, no fraction) get through. */
export function psInt(value: number): string {
  if (!Number.isSafeInteger(value)) throw new Error(`psInt: ${value} is not a safe integer`);
  return String(value);
}

/**
 * Throws unless `script` can go through the session's stdin unchanged: printable ASCII
 * lines, none empty or only white space (see TRANSPORT in windows-scripts.ts).
 */
export function assertTransportSafe(script: string): void {
  const lines = script.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') throw new Error(`script line ${i + 1} is blank`);
    if (!/^[\x20-\x7E]+$/.test(line)) throw new Error(`script line ${i + 1} is not printable ASCII`);
  });
}
