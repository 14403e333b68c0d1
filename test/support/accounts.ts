/**
 * Looks into a sandbox root's account files, and runs a real process under a
 * sandbox account's uid to prove log-off kills it.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { run } from '../../agent/os/exec.ts';
import { readSandboxEntry } from './sandbox.ts';

export async function accountGone(root: string, name: string): Promise<boolean> {
  const e = await readSandboxEntry(root, name);
  return !e.passwd && !e.shadow && e.groups.length === 0;
}

/** Members of the ownership-marker group: every account the agent manages. */
export async function managedAccounts(root: string): Promise<string[]> {
  const [line] = (await readSandboxEntry(root, 'jit-managed')).groups;
  return (line?.split(':')[3] ?? '').split(',').filter(Boolean);
}

/** The shadow entry's password field and account-expiry field. */
export async function shadowOf(root: string, name: string): Promise<{ password: string; expire: string }> {
  const line = (await readSandboxEntry(root, name)).shadow;
  if (!line) throw new Error(`${name} has no shadow entry`);
  const f = line.split(':');
  return { password: f[1]!, expire: f[7]! };
}

export async function uidOf(root: string, name: string): Promise<number> {
  const line = (await readSandboxEntry(root, name)).passwd;
  if (!line) throw new Error(`${name} has no passwd entry`);
  return Number(line.split(':')[2]);
}

/**
 * A long-running process under the account's uid, as a logged-in user would have.
 * Resolves once /proc shows the new uid: until setpriv has switched, the process is
 * still root's, invisible to logoff. `kill()` is for cleanup when logoff did not.
 */
export async function runAs(uid: number | string): Promise<{ alive(): boolean; kill(): void }> {
  const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'sleep', '300'], { stdio: 'ignore' });
  const alive = () => child.exitCode === null && child.signalCode === null;
  const kill = () => void (alive() && child.kill('SIGKILL'));
  try {
    for (let i = 0; !(await readFile(`/proc/${child.pid}/status`, 'utf8')).match(new RegExp(`^Uid:\\s+${uid}\\s`, 'm')); i++) {
      if (i > 100) throw new Error(`setpriv did not switch to uid ${uid}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch (err) {
    kill();
    throw err;
  }
  return { alive, kill };
}

/**
 * Ends the backstop processes an agent on this sandbox root left (linux-backstop.ts: where systemd
 * is not init they outlive the agent on purpose, until the grant's end).
 */
export async function killBackstops(root: string): Promise<void> {
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv.includes('jit-backstop') && argv.includes(root)) {
      try {
        process.kill(-Number(pid), 'SIGKILL');
      } catch {
        // gone meanwhile, or not a group leader
      }
    }
  }
}

export async function until(pred: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Checks `password` against the shadow hash with libcrypt (via python3); the password goes on stdin. */
export async function passwordMatches(root: string, name: string, password: string): Promise<boolean> {
  const hash = (await readSandboxEntry(root, name)).shadow?.split(':')[1]?.replace(/^!/, '') ?? '';
  const py = 'import crypt, sys; h = sys.argv[1]; print(crypt.crypt(sys.stdin.read(), h) == h)';
  return (await run('python3', ['-W', 'ignore', '-c', py, hash], { stdin: password })).stdout.trim() === 'True';
}
