/**
 * Parsers for what agent/service renders, as the consumers read it: a systemd unit and its
 * ExecStart words, a launchd plist, and a command line split the Microsoft C runtime's way.
 */
import assert from 'node:assert/strict';
import { XMLParser, XMLValidator } from 'fast-xml-parser';

/** A unit file: section → key → values (repeated keys keep every value). */
export function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      current = new Map();
      sections.set(sec[1]!, current);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(kv && current, `unit line not key=value inside a section: ${line}`);
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  }
  return sections;
}

/** ExecStart's words as systemd splits them: "…" with C escapes, then %% and $$ undone. */
export function execWords(value: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < value.length) {
    if (value[i] === ' ') {
      i++;
      continue;
    }
    let w = '';
    if (value[i] === '"') {
      for (i++; value[i] !== '"'; i++) {
        assert.ok(i < value.length, 'unterminated quote');
        if (value[i] === '\\') i++;
        w += value[i];
      }
      i++;
    } else {
      for (; i < value.length && value[i] !== ' '; i++) w += value[i];
    }
    words.push(w.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return words;
}

export type PlistValue = string | number | boolean | PlistValue[] | { [k: string]: PlistValue };
type XmlNode = Record<string, unknown>;

/** A parsed plist (fast-xml-parser, preserveOrder) → a JS value. */
function plistValue(node: XmlNode): PlistValue {
  const tag = Object.keys(node).find((k) => k !== ':@')!;
  const kids = ((node[tag] as XmlNode[]) ?? []).filter((k) => !('#text' in k && String(k['#text']).trim() === ''));
  const text = (): string => ((node[tag] as XmlNode[])[0]?.['#text'] as string | undefined) ?? '';
  switch (tag) {
    case 'string':
      return text();
    case 'integer':
      return Number(text());
    case 'true':
      return true;
    case 'false':
      return false;
    case 'array':
      return kids.map(plistValue);
    case 'dict': {
      const out: Record<string, PlistValue> = {};
      for (let i = 0; i < kids.length; i += 2) {
        assert.ok('key' in kids[i]!, 'dict entries alternate key and value');
        out[plistValue({ string: kids[i]!.key }) as string] = plistValue(kids[i + 1]!);
      }
      return out;
    }
    default:
      throw new Error(`unexpected plist element ${tag}`);
  }
}

export function parsePlist(xml: string): Record<string, PlistValue> {
  assert.equal(XMLValidator.validate(xml), true, 'well-formed XML');
  const doc = new XMLParser({ preserveOrder: true, ignoreAttributes: false, parseTagValue: false, trimValues: false }).parse(xml) as XmlNode[];
  const plist = doc.find((n) => 'plist' in n)!;
  assert.equal((plist[':@'] as Record<string, string>)['@_version'], '1.0');
  const dict = (plist.plist as XmlNode[]).find((n) => 'dict' in n)!;
  return plistValue(dict) as Record<string, PlistValue>;
}

/** How the Microsoft C runtime splits a command line (what node.exe does with AppParameters). */
export function crtSplit(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    let arg = '';
    let quoted = false;
    while (i < line.length) {
      const c = line[i]!;
      if (!quoted && (c === ' ' || c === '\t')) break;
      if (c === '\\') {
        let bs = 0;
        while (line[i] === '\\') (bs++, i++);
        // Backslashes are literal unless a quote follows: then they pair up, an odd one escapes it.
        if (line[i] === '"') {
          arg += '\\'.repeat(bs >> 1);
          if (bs % 2) (arg += '"', i++);
        } else arg += '\\'.repeat(bs);
      } else if (c === '"') {
        quoted = !quoted;
        i++;
      } else {
        arg += c;
        i++;
      }
    }
    args.push(arg);
  }
  return args;
}
