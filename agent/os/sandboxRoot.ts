import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * A throwaway root with just enough of /etc for shadow-utils' --prefix / -R modes,
 * so tests and the demo create real accounts without touching the machine's own /etc.
 * `adminGroup` picks the distribution flavour: Debian/Ubuntu 'sudo' or RHEL/Fedora/Arch 'wheel'.
 */
export async function makeSandboxRoot(
  opts: { adminGroup?: 'sudo' | 'wheel' } = {},
): Promise<{ root: string; cleanup(): Promise<void> }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'jit-sandbox-'));
  const admin = opts.adminGroup ?? 'sudo';
  const adminGid = admin === 'sudo' ? 27 : 10;
  const files: Record<string, string> = {
    passwd: 'root:x:0:0:root:/root:/bin/bash\n',
    shadow: 'root:*:19000:0:99999:7:::\n',
    group: `root:x:0:\n${admin}:x:${adminGid}:\nusers:x:100:\n`,
    gshadow: `root:*::\n${admin}:*::\nusers:*::\n`,
    'login.defs': [
      'UID_MIN 1000', 'UID_MAX 60000', 'GID_MIN 1000', 'GID_MAX 60000',
      'SYS_GID_MIN 101', 'SYS_GID_MAX 999', 'USERGROUPS_ENAB yes', 'ENCRYPT_METHOD SHA512', '',
    ].join('\n'),
  };
  await mkdir(path.join(root, 'etc'));
  await mkdir(path.join(root, 'home'));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(root, 'etc', name), text);
  for (const secret of ['shadow', 'gshadow']) await chmod(path.join(root, 'etc', secret), 0o640);
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}
