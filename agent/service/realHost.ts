/** The real machine as a ServiceHost: real commands, files, privilege check and backend. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as defaultRun } from '../os/exec.ts';
import { backendForThisOs } from '../os/select.ts';
import type { ServiceHost, ServicePlatform } from './host.ts';
import { nodeFiles } from './nodeFiles.ts';
import { privilegeProbeCommand } from './windows.ts';

// This file runs as agent/service/realHost.ts (tsx) or as dist/agent/service/realHost.js (built).
const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', ...(import.meta.url.endsWith('.js') ? ['..'] : []));

export function defaultHost(): ServiceHost {
  const platform: ServicePlatform = process.platform === 'win32' ? 'win32' : process.platform === 'darwin' ? 'darwin' : 'linux';
  const host: ServiceHost = {
    platform,
    env: process.env,
    run: defaultRun,
    files: nodeFiles,
    isPrivileged: async () => {
      if (platform !== 'win32') return process.getuid?.() === 0;
      const [file, ...argv] = privilegeProbeCommand(process.env);
      return host.run(file!, argv).then(
        () => true,
        () => false,
      );
    },
    print: (line) => process.stdout.write(`${line}\n`),
    backend: (root) => backendForThisOs(root),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    nodePath: process.execPath,
    repoDir: REPO_DIR,
  };
  return host;
}
