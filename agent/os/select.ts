import { AccountError, type AccountBackend } from './backend.ts';
import { LinuxBackend } from './linux.ts';
import { MacBackend } from './macos.ts';
import { WindowsBackend } from './windows.ts';

/** The backend for this machine's OS. `sandboxRoot` keeps Linux accounts inside a throwaway root. */
export function backendForThisOs(sandboxRoot?: string): AccountBackend {
  if (process.platform === 'linux') return new LinuxBackend(sandboxRoot ? { root: sandboxRoot } : {});
  if (process.platform === 'darwin') return new MacBackend();
  // 64-bit Windows PowerShell 5.1 unless the machine says JIT_POWERSHELL=pwsh (PowerShell 7).
  if (process.platform === 'win32') return new WindowsBackend(process.env.JIT_POWERSHELL === 'pwsh' ? { shell: 'pwsh' } : {});
  throw new AccountError('COMMAND_FAILED', `no account backend for ${process.platform}`);
}

/** The protocol's name for this machine's OS. */
export function thisOs(): 'linux' | 'windows' | 'macos' {
  return process.platform === 'win32' ? 'windows' : process.platform === 'darwin' ? 'macos' : 'linux';
}
