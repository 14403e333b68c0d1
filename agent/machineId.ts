/**
 * The machine's identity, so the server recognises a machine that enrolls again (a reinstall,
 * a lost state file) instead of taking it for a second endpoint with the same hostname. Only a
 * SHA-256 of it leaves the machine. Linux: /etc/machine-id; macOS: the IOPlatformUUID; Windows:
 * HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid. A sandbox (tests, the demo) is a machine of
 * its own: its root is part of the hash.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from './os/exec.ts';

async function rawId(): Promise<string | null> {
  const out = (file: string, argv: string[]) => run(file, argv).then((r) => r.stdout, () => '');
  if (process.platform === 'linux') {
    for (const f of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
      const id = (await readFile(f, 'utf8').catch(() => '')).trim();
      if (id) return id;
    }
    return null;
  }
  if (process.platform === 'darwin') {
    return /"IOPlatformUUID" = "([^"]+)"/.exec(await out('/usr/sbin/ioreg', ['-rd1', '-c', 'IOPlatformExpertDevice']))?.[1] ?? null;
  }
  if (process.platform === 'win32') {
    const reg = path.join(process.env.SystemRoot ?? 'C:\\Windows', 'System32', 'reg.exe');
    return /MachineGuid\s+REG_SZ\s+(\S+)/.exec(await out(reg, ['query', 'HKLM\\SOFTWARE\\Microsoft\\Cryptography', '/v', 'MachineGuid']))?.[1] ?? null;
  }
  return null;
}

/** 64 hex characters, or undefined when the OS does not tell. */
export async function machineId(sandboxRoot?: string): Promise<string | undefined> {
  const id = await rawId();
  if (!id) return undefined;
  return createHash('sha256').update(`jit-access machine ${id}${sandboxRoot ? ` sandbox ${path.resolve(sandboxRoot)}` : ''}`).digest('hex');
}
