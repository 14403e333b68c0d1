/**
 * What install copies into the runtime folder: the packages the built agent imports and theirs,
 * found the way Node finds them, and nothing that links out of the repository.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO } from '../../test/support/serviceHost.ts';
import { describePayload, importedPackages, planPayload } from './payload.ts';

describe('service: the runtime payload', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(path.join(os.tmpdir(), 'jit-payload-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function file(rel: string, text = ''): Promise<void> {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), text);
  }
  const pkg = (name: string, deps: Record<string, Record<string, string>> = {}) => JSON.stringify({ name, version: '1.0.0', ...deps });

  it('reads static, dynamic and side-effect imports; leaves out relative paths and built-ins', () => {
    const src = [
      "import { z } from 'zod';",
      "import pino from 'pino';",
      "export { x } from '@scope/pkg/sub/path.js';",
      "import 'side-effect';",
      "const { PowerShell } = await import('node-powershell');",
      "import fs from 'node:fs'; import path from 'path'; import './local.js'; const r = await import('../mail/render.js');",
      'import {\n  a,\n  b\n} from "multi-line";',
    ].join('\n');
    assert.deepEqual(importedPackages(src), ['@scope/pkg', 'multi-line', 'node-powershell', 'pino', 'side-effect', 'zod']);
  });

  it('follows dependencies where Node would find them (nested copies too), optional ones only when installed', async () => {
    await file('dist/agent/main.js', "import a from 'a';\nconst b = await import('b');");
    await file('dist/templates/x.hbs', 'hi');
    await file('node_modules/a/package.json', pkg('a', { dependencies: { c: '^2' }, optionalDependencies: { missing: '1' } }));
    await file('node_modules/a/index.js');
    await file('node_modules/a/node_modules/c/package.json', pkg('c'));
    await file('node_modules/c/package.json', pkg('c'));
    await file('node_modules/b/package.json', pkg('b', { peerDependencies: { c: '*' } }));
    await file('node_modules/unused/package.json', pkg('unused'));
    await file('node_modules/.bin/x');
    const node = path.join(dir, 'node-bin');
    await file('node-bin', 'ELF');
    const p = await planPayload(dir, node, 'linux');
    assert.deepEqual(p.packages, ['a', 'a/node_modules/c', 'b', 'c']);
    assert.deepEqual(p.items.map((i) => i.to).sort(), [
      'bin/node',
      'dist/agent/main.js',
      'dist/templates/x.hbs',
      'node_modules/a/index.js',
      'node_modules/a/node_modules/c/package.json',
      'node_modules/a/package.json',
      'node_modules/b/package.json',
      'node_modules/c/package.json',
      'package.json',
    ]);
    assert.equal(JSON.parse(p.items.find((i) => i.to === 'package.json')!.text!).type, 'module', 'dist/ is ES modules');
    assert.equal(p.items.find((i) => i.to === 'bin/node')!.executable, true);
  });

  it('refuses a package that is a link out of the repository, and a required package that is missing', async () => {
    await file('dist/agent/main.js', "import a from 'a';");
    await mkdir(path.join(dir, 'node_modules'), { recursive: true });
    const outside = await mkdtemp(path.join(os.tmpdir(), 'jit-outside-'));
    try {
      await writeFile(path.join(outside, 'package.json'), pkg('a'));
      await symlink(outside, path.join(dir, 'node_modules', 'a'));
      await assert.rejects(planPayload(dir, process.execPath, 'linux'), /node_modules\/a is a link to .*jit-outside-.*, outside .*: not copied into the runtime folder/);
      await rm(path.join(dir, 'node_modules', 'a'));
      await assert.rejects(planPayload(dir, process.execPath, 'linux'), /the built agent needs the package a .* run npm ci/);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('for this repository: the packages the built agent needs, no development tools, about 113 MiB with node', async () => {
    const p = await planPayload(REPO, process.execPath, 'linux');
    for (const name of ['zod', 'pino', 'nodemailer', 'luxon', 'handlebars', 'generate-password', 'node-powershell', 'thread-stream']) assert.ok(p.packages.includes(name), name);
    for (const name of ['typescript', 'mocha', 'tsx', 'mongodb', 'express', 'playwright-core']) assert.ok(!p.packages.includes(name), `${name} is not needed at run time`);
    assert.ok(p.sizes.packages < 40 * 1024 * 1024, describePayload(p));
    assert.match(describePayload(p), /^\d+ files, [\d.]+ MiB: node [\d.]+ MiB, \d+ packages [\d.]+ MiB, agent [\d.]+ MiB$/);
  });
});
