/**
 * Where the agent's local channel lives (protocol/local.ts), by OS; a sandboxed agent's under its
 * sandbox root. No schemas here: the idle agent loads this at start, the schemas on first use.
 */
export function localDir(platform: NodeJS.Platform, sandboxRoot?: string): string {
  if (sandboxRoot) return `${sandboxRoot}/run/jit-agent`;
  return platform === 'darwin' ? '/var/run/jit-agent' : '/run/jit-agent';
}
export const SOCKET_NAME = 'jit.sock';
export const PROOF_DIR_NAME = 'proof';
