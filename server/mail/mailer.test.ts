import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { requesterLabel } from './requester.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

/** Relative imports of a module, `import type` and re-exports included (a cycle of types is a cycle too). */
function importsOf(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const specs = [...src.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]/gm), ...src.matchAll(/\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)].map((m) => m[1]!);
  return specs.map((s) => path.resolve(path.dirname(file), s));
}

/** One import path from `from` back to `to`, or null. */
function pathBack(from: string, to: string): string[] | null {
  const seen = new Set<string>();
  const walk = (file: string, trail: string[]): string[] | null => {
    for (const next of importsOf(file)) {
      if (next === to) return [...trail, next];
      if (seen.has(next) || !next.startsWith(path.join(REPO, 'server'))) continue;
      seen.add(next);
      const found = walk(next, [...trail, next]);
      if (found) return found;
    }
    return null;
  };
  return walk(from, [from]);
}

describe('server mailer module', () => {
  it('is in no import cycle (commands and the context do not lead back to it)', () => {
    const mailer = path.join(REPO, 'server/mail/mailer.ts');
    const cycle = pathBack(mailer, mailer);
    assert.equal(cycle, null, `cycle: ${cycle?.map((f) => path.relative(REPO, f)).join(' → ')}`);
  });

  it('names the requester of a grant: a user by email, the admin token as an administrator', () => {
    assert.equal(requesterLabel('user:alice@corp.example'), 'alice@corp.example');
    assert.equal(requesterLabel('admin'), 'an administrator');
    assert.equal(requesterLabel('system'), undefined);
    assert.equal(requesterLabel('agent:ep-1'), undefined);
  });
});
