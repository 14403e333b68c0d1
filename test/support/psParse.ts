/**
 * Syntax-checks PowerShell without PowerShell: the tree-sitter grammar from
 * tree-sitter-powershell (Airbus CERT), whose npm package ships tree-sitter-powershell.wasm,
 * run by web-tree-sitter (shared notes §5).
 *
 * A smoke test, not PowerShell's own parser: tree-sitter is error-tolerant (so we walk the
 * tree for ERROR and missing nodes) and does no semantic checks. One known gap, found here:
 * the grammar ends single-quoted strings only at ASCII ', while PowerShell also ends them at
 * U+2018–U+201B (notes §2 [W12]). `readVerbatimString` implements PowerShell's rule for that
 * reason, so tests can check literals with both.
 */
import { createRequire } from 'node:module';
import { Language, Parser, type Node } from 'web-tree-sitter';

export interface PsLiteral {
  /** verbatim: '…'; expandable: "…" (expands $x, $(…), backticks); here-strings likewise. */
  kind: 'verbatim' | 'expandable' | 'verbatim-here' | 'expandable-here';
  /** Source text including the quotes. */
  text: string;
  /** UTF-16 offsets into the source. */
  start: number;
  end: number;
}

export interface PsParseResult {
  ok: boolean;
  /** One line per ERROR or missing node: what and where (1-based line:column). */
  errors: string[];
  literals: PsLiteral[];
}

const LITERAL_KINDS: Record<string, PsLiteral['kind']> = {
  verbatim_string_characters: 'verbatim',
  expandable_string_literal: 'expandable',
  verbatim_here_string_characters: 'verbatim-here',
  expandable_here_string_literal: 'expandable-here',
};

let parser: Promise<Parser> | undefined;

function loadParser(): Promise<Parser> {
  parser ??= (async () => {
    await Parser.init();
    const p = new Parser();
    const wasm = createRequire(import.meta.url).resolve('tree-sitter-powershell/tree-sitter-powershell.wasm');
    p.setLanguage(await Language.load(wasm));
    return p;
  })();
  return parser;
}

/** Parses `src`; `ok` is false when the tree has any ERROR or missing node. */
export async function parsePowerShell(src: string): Promise<PsParseResult> {
  const tree = (await loadParser()).parse(src);
  if (!tree) return { ok: false, errors: ['parser returned no tree'], literals: [] };
  const errors: string[] = [];
  const literals: PsLiteral[] = [];
  const walk = (n: Node): void => {
    const where = `${n.startPosition.row + 1}:${n.startPosition.column + 1}`;
    if (n.isMissing) errors.push(`missing ${JSON.stringify(n.type)} at ${where}`);
    else if (n.type === 'ERROR') errors.push(`syntax error at ${where}: ${JSON.stringify(n.text.slice(0, 60))}`);
    const kind = LITERAL_KINDS[n.type];
    if (kind) literals.push({ kind, text: n.text, start: n.startIndex, end: n.endIndex });
    for (const c of n.children) if (c) walk(c);
  };
  walk(tree.rootNode);
  const hasError = tree.rootNode.hasError;
  tree.delete();
  return { ok: errors.length === 0 && !hasError, errors, literals };
}

/** PowerShell's single-quote characters: ' and U+2018–U+201B (CharTraits.IsSingleQuote [W12]). */
export const isPsSingleQuote = (c: string | undefined): boolean => c !== undefined && /^['\u2018-\u201B]$/.test(c);

/**
 * Reads a single-quoted string at `start` the way PowerShell's tokenizer does: it opens and
 * ends at any single-quote character, and two in a row stand for one (the second is kept).
 * Returns the value and the offset just after the closing quote, or null if unterminated.
 */
export function readVerbatimString(src: string, start: number): { value: string; end: number } | null {
  if (!isPsSingleQuote(src[start])) return null;
  let value = '';
  for (let i = start + 1; i < src.length; i++) {
    const c = src[i]!;
    if (isPsSingleQuote(c)) {
      if (isPsSingleQuote(src[i + 1])) {
        value += src[i + 1];
        i++;
        continue;
      }
      return { value, end: i + 1 };
    }
    value += c;
  }
  return null;
}
