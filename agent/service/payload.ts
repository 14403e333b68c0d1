/**
 * What install copies into the runtime folder, read from the repository it runs from:
 *
 * - node itself (the executable running install, links resolved);
 * - dist/ as `npm run build:agent` made it (agent, protocol, mail, templates);
 * - from node_modules, exactly the packages the built agent imports (every bare specifier in
 *   dist/**\/*.js, static and dynamic: zod, pino, nodemailer, luxon, handlebars,
 *   generate-password, node-powershell) and, recursively, their dependencies and installed
 *   optional and peer dependencies, each where Node would find it (nested copies included);
 * - a package.json with "type": "module" (dist/ is ES modules; Node reads that from the nearest
 *   package.json).
 *
 * Measured on Linux x64 with Node 20.20 (npm ci of this repository): 1,961 files, 113.1 MiB:
 * node 94.3 MiB, 39 packages 18.6 MiB, dist/ 0.2 MiB.
 *
 * A symbolic link is followed only when it stays inside the repository (anything else would
 * let the runtime folder point back at files a user can change); a link out is refused.
 */
import { builtinModules } from 'node:module';
import { lstat, readFile, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { nodeInRuntime, type Payload, type PayloadItem, type ServicePlatform } from './host.ts';

const RUNTIME_PACKAGE_JSON = `${JSON.stringify({ name: 'jit-agent-runtime', private: true, type: 'module' }, null, 2)}\n`;

const SPECIFIERS = [/\bfrom\s*['"]([^'"\n]+)['"]/g, /\bimport\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g, /^\s*import\s*['"]([^'"\n]+)['"]/gm];

/** Package names a JavaScript module imports (bare specifiers only, built-ins left out). */
export function importedPackages(source: string): string[] {
  const names = new Set<string>();
  for (const re of SPECIFIERS) {
    for (const m of source.matchAll(re)) {
      const spec = m[1]!;
      if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || spec.startsWith('#')) continue;
      const parts = spec.split('/');
      const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
      if (!builtinModules.includes(name)) names.add(name);
    }
  }
  return [...names].sort();
}

function inside(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

const toPosix = (rel: string): string => rel.split(path.sep).join('/');

export async function planPayload(repoDir: string, nodePath: string, platform: ServicePlatform): Promise<Payload> {
  const repo = await realpath(repoDir);
  const items: PayloadItem[] = [];
  const sizes = { node: 0, agent: 0, packages: 0 };

  /** Every file under `dir` (links inside the repository followed), as items relative to the repository. */
  const walk = async (dir: string, skipTop: string[] = []): Promise<number> => {
    let bytes = 0;
    const visit = async (p: string, top: boolean): Promise<void> => {
      const l = await lstat(p);
      let src = p;
      if (l.isSymbolicLink()) {
        src = await realpath(p);
        if (!inside(src, repo)) throw new Error(`${p} is a link to ${src}, outside ${repo}: not copied into the runtime folder (it would let that file change what runs as root)`);
      }
      const st = await stat(src);
      if (st.isDirectory()) {
        for (const name of (await readdir(src)).sort()) if (!(top && skipTop.includes(name))) await visit(path.join(p, name), false);
      } else if (st.isFile()) {
        items.push({ from: src, to: toPosix(path.relative(repo, p)), executable: platform !== 'win32' && (st.mode & 0o111) !== 0 });
        bytes += st.size;
      }
    };
    await visit(dir, true);
    return bytes;
  };

  const dist = path.join(repo, 'dist');
  if (!(await stat(dist).catch(() => null))?.isDirectory()) throw new Error(`${dist} is missing: run npm ci (or npm run build:agent) first`);
  sizes.agent = await walk(dist);

  // The packages the built agent imports, and theirs.
  const wanted: { name: string; from: string; optional: boolean }[] = [];
  for (const item of items.filter((i) => i.to.endsWith('.js'))) {
    for (const name of importedPackages(await readFile(item.from!, 'utf8'))) wanted.push({ name, from: path.dirname(item.from!), optional: false });
  }
  const packages = new Set<string>();
  while (wanted.length) {
    const { name, from, optional } = wanted.shift()!;
    const dir = await findPackage(name, from, repo);
    if (!dir) {
      if (optional) continue;
      throw new Error(`the built agent needs the package ${name} (from ${from}), which is not installed in ${repo}/node_modules: run npm ci`);
    }
    if (packages.has(dir)) continue;
    packages.add(dir);
    const pj = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    for (const dep of Object.keys(pj.dependencies ?? {})) wanted.push({ name: dep, from: dir, optional: false });
    for (const dep of Object.keys({ ...pj.optionalDependencies, ...pj.peerDependencies })) wanted.push({ name: dep, from: dir, optional: true });
  }
  for (const dir of [...packages].sort()) sizes.packages += await walk(dir, ['node_modules']);

  const node = await realpath(nodePath);
  sizes.node = (await stat(node)).size;
  items.push({ from: node, to: nodeInRuntime(platform), executable: true }, { text: RUNTIME_PACKAGE_JSON, to: 'package.json', executable: false });
  const nodeModules = path.join(repo, 'node_modules');
  return {
    items,
    bytes: sizes.node + sizes.agent + sizes.packages + RUNTIME_PACKAGE_JSON.length,
    packages: [...packages].map((d) => toPosix(path.relative(nodeModules, d))).sort(),
    sizes,
  };
}

/** Where Node would find package `name` from `from`: node_modules folders upward, not above the repository. */
async function findPackage(name: string, from: string, repo: string): Promise<string | null> {
  for (let d = from; inside(d, repo); d = path.dirname(d)) {
    const candidate = path.join(d, 'node_modules', name);
    if (await stat(path.join(candidate, 'package.json')).then((s) => s.isFile(), () => false)) return candidate;
    if (d === repo) break;
  }
  return null;
}

const MiB = 1024 * 1024;

/** "1234 files, 119.2 MiB: node 94.4 MiB, 39 packages 24.6 MiB, agent 0.3 MiB". */
export function describePayload(p: Payload): string {
  const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  return `${p.items.length} files, ${mib(p.bytes)}: node ${mib(p.sizes.node)}, ${p.packages.length} packages ${mib(p.sizes.packages)}, agent ${mib(p.sizes.agent)}`;
}
