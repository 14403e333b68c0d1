/**
 * LinuxBackend's create + enable + delete on a sandbox root against the bare
 * shadow-utils commands doing the same on another sandbox root, interleaved so
 * both see the same machine load. Returns medians in ms and their ratio.
 */
import { run } from '../agent/os/exec.ts';
import { LinuxBackend, MARKER_GROUP, expiryDay } from '../agent/os/linux.ts';
import { removeAccount } from '../agent/removal.ts';
import { makeSandboxRoot } from '../agent/os/sandboxRoot.ts';

export interface BackendResult {
  iterations: number;
  backendMedianMs: number;
  bareMedianMs: number;
  ratio: number;
}

const PASSWORD = 'Bench-Password-123!xyz';

export async function backendBench(iterations: number): Promise<BackendResult> {
  const a = await makeSandboxRoot();
  const b = await makeSandboxRoot();
  try {
    const backend = new LinuxBackend({ root: a.root });
    // The bare side creates the marker group once, as a hand-written script would.
    await run('groupadd', ['--prefix', b.root, '-r', '-f', MARKER_GROUP]);
    const backendMs: number[] = [];
    const bareMs: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const name = `jitbench${i}`;
      const expiresAt = new Date(Date.now() + 3600_000);
      let t = performance.now();
      const { id } = await backend.createDisabled({ name, group: 'Administrators', grantId: `bench-${i}`, expiresAt, uid: 2_000_000 + i }, PASSWORD);
      await backend.enable(name, expiresAt);
      await removeAccount(backend, { name, id }, 'disable');
      backendMs.push(performance.now() - t);

      t = performance.now();
      const p = ['--prefix', b.root];
      await run('useradd', [...p, '-u', String(2_000_000 + i), '-l', '-K', 'PASS_MAX_DAYS=-1', '-m', '-s', '/bin/bash', '-e', '1',
        '-c', `jit-access grant=bench-${i}`, '-G', `sudo,${MARKER_GROUP}`, '--', name]);
      await run('chpasswd', ['-c', 'SHA512', '-R', b.root], { stdin: `${name}:${PASSWORD}\n` });
      await run('usermod', [...p, '-L', '--', name]);
      await run('usermod', [...p, '-U', '-e', String(expiryDay(expiresAt)), '--', name]);
      await run('usermod', [...p, '-L', '-e', '1', '--', name]);
      for (const flag of ['-U', '-u']) await run('pkill', ['-KILL', flag, String(2_000_000 + i)], { okCodes: [0, 1] });
      await run('userdel', [...p, '-r', '--', name]);
      await run('find', ['/tmp', '/var/tmp', '/dev/shm', '-xdev', '-uid', String(2_000_000 + i), '-delete'], { okCodes: [0, 1] });
      bareMs.push(performance.now() - t);
    }
    const backendMedianMs = median(backendMs);
    const bareMedianMs = median(bareMs);
    return { iterations, backendMedianMs, bareMedianMs, ratio: backendMedianMs / bareMedianMs };
  } finally {
    await a.cleanup();
    await b.cleanup();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
