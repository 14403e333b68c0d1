/**
 * The folders install creates or trusts, and the runtime copy, on every OS:
 *
 * 1. preflight (before any change, also in a dry run): every folder install will use — the
 *    state folder, the runtime folder and its `.new`/`.old` siblings, the service definition —
 *    must be missing or root's alone (Windows: SYSTEM's and Administrators' alone, children
 *    included). Otherwise install stops, naming what and why, having changed nothing.
 * 2. the state folder: created or tightened (0700 root; Windows: protected ACL), then read back.
 * 3. the runtime: node and the built agent copied into `<runtime>.new` (created root's alone),
 *    checked file by file (and node's shared libraries), then swapped in for `<runtime>`.
 */
import { describePayload } from './payload.ts';
import type { Payload, ServiceHost } from './host.ts';
import { nodeInRuntime } from './host.ts';
import { Steps, pathFor } from './steps.ts';
import {
  aclProbeCommand,
  createProtectedDirCommand,
  foreignSids,
  lockFolderCommands,
  parseAclProbe,
  untrustedReasons,
  verifyProblems,
  type AclProbe,
} from './windowsAcl.ts';

export interface RuntimePaths {
  runtime: string;
  staging: string;
  old: string;
}

export function runtimePaths(runtime: string): RuntimePaths {
  return { runtime, staging: `${runtime}.new`, old: `${runtime}.old` };
}

/** Windows: each folder's ACL as found by preflight. */
export type Probes = Map<string, AclProbe>;

/**
 * Refuses (throws) before any change when a folder or file install will use can't be trusted.
 * `paths`: folders and files (Unix) or folders (Windows).
 */
export async function preflight(host: ServiceHost, steps: Steps, paths: string[]): Promise<Probes> {
  const problems: string[] = [];
  const probes: Probes = new Map();
  for (const p of [...new Set(paths)]) {
    if (host.platform === 'win32') {
      const probe = await probeAcl(host, steps, p);
      probes.set(p, probe);
      problems.push(...untrustedReasons(probe));
    } else {
      const problem = await host.files.trustProblem(p);
      if (problem) problems.push(problem);
    }
  }
  if (problems.length) {
    const who = host.platform === 'win32' ? 'SYSTEM and Administrators' : 'root';
    throw new Error(
      `refusing to install: what the service will run or read must be changeable by ${who} alone, and\n  ${problems.join('\n  ')}\n` +
        'Nothing was changed. Someone else may have prepared these to take over the service: inspect them, remove them, and run install again.',
    );
  }
  return probes;
}

async function probeAcl(host: ServiceHost, steps: Steps, dir: string): Promise<AclProbe> {
  const r = await steps.probe(aclProbeCommand(dir, host.env), [0], `who can change ${dir}`);
  return parseAclProbe(r.stdout);
}

/** Creates a private folder (0700 root; Windows: protected, SYSTEM and Administrators), or tightens the one preflight trusted, and reads it back. */
export async function securePrivateDir(host: ServiceHost, steps: Steps, dir: string, probes: Probes): Promise<void> {
  if (host.platform !== 'win32') {
    await steps.act(`create ${dir} (or keep it), root's alone: owner root, mode 0700, checked after`, () => host.files.makeSecureDir(dir, 0o700));
    return;
  }
  const probe = probes.get(dir) ?? { exists: false, childCount: 0, children: [] };
  await lockWindowsDir(host, steps, dir, probe.exists, { foreign: foreignSids(probe), hasChildren: probe.childCount > 0 });
}

async function lockWindowsDir(host: ServiceHost, steps: Steps, dir: string, exists: boolean, o: { foreign: string[]; hasChildren: boolean }): Promise<void> {
  if (!exists) await steps.command(createProtectedDirCommand(dir, host.env), undefined, `create ${dir} with SYSTEM and Administrators full control only (protected from the start)`);
  for (const cmd of lockFolderCommands(dir, host.env, o)) await steps.command(cmd);
  if (steps.dryRun) return;
  const problems = verifyProblems(await probeAcl(host, steps, dir));
  if (problems.length) throw new Error(`after locking ${dir}, its ACL is not what it must be:\n  ${problems.join('\n  ')}`);
  steps.say(`checked: ${dir} is SYSTEM's and Administrators' alone`);
}

/**
 * Copies the payload into `<runtime>.new`, checks it, runs `beforeSwap` (Windows: compile the
 * service host into it), then puts it in place of `<runtime>` (whose old copy is removed).
 */
export async function installRuntime(host: ServiceHost, steps: Steps, paths: RuntimePaths, payload: Payload, beforeSwap?: (staging: string) => Promise<void>): Promise<void> {
  const p = pathFor(host.platform);
  const { runtime, staging, old } = paths;
  for (const leftover of [staging, old]) {
    if (await host.files.exists(leftover)) await steps.act(`remove ${leftover}, left by an interrupted install`, () => host.files.removeTree(leftover));
  }
  if (host.platform === 'win32') {
    await steps.command(createProtectedDirCommand(staging, host.env), undefined, `create ${staging} with SYSTEM and Administrators full control only`);
  } else {
    await steps.act(`create ${staging}, root's alone (mode 0755)`, () => host.files.makeSecureDir(staging, 0o755));
  }
  try {
    await steps.act(`copy node (${host.nodePath}) and the built agent into ${staging}: ${describePayload(payload)}`, () => host.files.copyPayload(payload, staging, p));
    if (beforeSwap) await beforeSwap(staging);
    if (host.platform === 'win32') {
      await lockWindowsDir(host, steps, staging, true, { foreign: [], hasChildren: true });
    } else if (!steps.dryRun) {
      const problems = await host.files.verifyTree(staging);
      if (problems.length) throw new Error(`the copy in ${staging} is not root's alone:\n  ${problems.join('\n  ')}`);
      steps.say(`checked: every file in ${staging} is root's, none writable by group or others, no links`);
      await checkNodeLibraries(host, steps, p.join(staging, ...nodeInRuntime(host.platform).split('/')));
    } else steps.say('[dry run] would check every copied file and the shared libraries the copied node loads');
  } catch (e) {
    // Nothing of a failed copy stays behind; the running service still has its runtime folder.
    if (!steps.dryRun) await host.files.removeTree(staging).catch(() => {});
    throw e;
  }

  const replacing = await host.files.exists(runtime);
  if (replacing) await steps.act(`move the previous ${runtime} to ${old}`, () => host.files.rename(runtime, old));
  await steps.act(`move ${staging} to ${runtime}`, () => host.files.rename(staging, runtime));
  if (replacing) await steps.act(`remove ${old}`, () => host.files.removeTree(old));
  if (!steps.dryRun && host.platform !== 'win32') {
    const problem = await host.files.trustProblem(runtime);
    if (problem) throw new Error(`after moving it into place: ${problem}`);
  }
}

/**
 * node's shared libraries must be root's too, or whoever can change one runs code as root:
 * Linux asks ld.so (ldd, in a clean environment like the service's); macOS asks dyld to print
 * what it loads, which must all be system libraries (a Homebrew node loads libuv, ICU and
 * OpenSSL from /opt/homebrew, which the admin user owns). Run on the node install found (before
 * any change, also in a dry run) and on its copy. Windows: not checked (see windows.ts).
 */
export async function checkNodeLibraries(host: ServiceHost, steps: Steps, node: string): Promise<void> {
  if (host.platform === 'win32') return;
  const problems: string[] = [];
  const libs: string[] = [];
  if (host.platform === 'darwin') {
    // ⚠️ The dyld output format is from dyld's documentation and reports, not seen here.
    const r = await steps.probe(['/usr/bin/env', '-i', 'DYLD_PRINT_LIBRARIES=1', node, '-e', '0'], [0], `the libraries ${node} loads`);
    const loaded = [...`${r.stderr}\n${r.stdout}`.matchAll(/^dyld(?:\[\d+\])?:\s+(?:loaded:\s+)?(?:<[^>]*>\s+)?(\/.*?)\s*$/gm)].map((m) => m[1]!);
    // dyld lists the program itself first.
    libs.push(...loaded.slice(1));
    for (const lib of libs) if (!/^\/(usr\/lib|System\/Library)\//.test(lib)) problems.push(`${lib} is not a system library`);
  } else {
    const r = await steps.probe(['/usr/bin/env', '-i', '/usr/bin/ldd', node], [0], `the libraries ${node} loads`);
    for (const line of r.stdout.split('\n')) {
      if (/=>\s*not found/.test(line)) problems.push(`${line.trim()}`);
      const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
      if (m) libs.push(m[1]!);
    }
    for (const lib of libs) {
      const problem = await host.files.trustProblem(lib, { followLinks: true });
      if (problem) problems.push(problem);
    }
  }
  if (libs.length === 0) problems.push('no library listed: cannot tell what node loads');
  if (problems.length) {
    throw new Error(
      `${node} loads libraries that someone other than root can change, so the service would run their code:\n  ${problems.join('\n  ')}\n` +
        "Nothing of the service was installed. Install Node from nodejs.org or your distribution's packages, and run install with that node.",
    );
  }
  steps.say(`checked: ${node} loads ${libs.length} libraries, all root's`);
}
