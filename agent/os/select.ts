import { AccountError, type AccountBackend } from './backend.ts';

/**
 * The backend for this machine's OS. `sandboxRoot` keeps Linux accounts inside a throwaway root.
 * Imported on demand, so that the agent loads only its own OS's backend.
 */
export async function backendForThisOs(sandboxRoot?: string): Promise<AccountBackend> {
  if (process.platform === 'linux') {
    const { LinuxBackend } = await import('./linux.ts');
    return new LinuxBackend(sandboxRoot ? { root: sandboxRoot } : {});
  }
  if (process.platform === 'darwin') {
    const { MacBackend } = await import('./macos.ts');
    return new MacBackend();
  }
  if (process.platform === 'win32') {
    const { WindowsBackend } = await import('./windows.ts');
    // 64-bit Windows PowerShell 5.1 unless the machine says JIT_POWERSHELL=pwsh (PowerShell 7).
    return new WindowsBackend(process.env.JIT_POWERSHELL === 'pwsh' ? { shell: 'pwsh' } : {});
  }
  throw new AccountError('COMMAND_FAILED', `no account backend for ${process.platform}`);
}

/** The protocol's name for this machine's OS. */
export function thisOs(): 'linux' | 'windows' | 'macos' {
  return process.platform === 'win32' ? 'windows' : process.platform === 'darwin' ? 'macos' : 'linux';
}
