/**
 * Looks into a sandbox root's account files, and runs a real process under a
 * sandbox account's uid to prove log-off kills it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** Lines of passwd, shadow and group (members) that mention `name`. */
export async function accountLines(root: string, name: string): Promise<{ passwd: string[]; shadow: string[]; group: string[] }> {
  const read = async (f: string) => (await readFile(path.join(root, 'etc', f), 'utf8')).split('\n');
  const own = (l: string) => l.startsWith(`${name}:`);
  const member = (l: string) => (l.split(':')[3] ?? '').split(',').includes(name);
  return {
    passwd: (await read('passwd')).filter(own),
    shadow: (await read('shadow')).filter(own),
    group: (await read('group')).filter((l) => own(l) || member(l)),
  };
}

export async function accountGone(root: string, name: string): Promise<boolean> {
  const l = await accountLines(root, name);
  return l.passwd.length + l.shadow.length + l.group.length === 0;
}

/** The shadow entry's password field and account-expiry field. */
export async function shadowOf(root: string, name: string): Promise<{ password: string; expire: string }> {
  const [line] = (await accountLines(root, name)).shadow;
  if (!line) throw new Error(`${name} has no shadow entry`);
  const f = line.split(':');
  return { password: f[1]!, expire: f[7]! };
}

export async function uidOf(root: string, name: string): Promise<number> {
  const [line] = (await accountLines(root, name)).passwd;
  if (!line) throw new Error(`${name} has no passwd entry`);
  return Number(line.split(':')[2]);
}

/** A long-running process under the account's uid, as a logged-in user would have. */
export function runAs(uid: number): { child: ChildProcess; alive(): boolean } {
  const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'sleep', '300'], { stdio: 'ignore' });
  let exited = false;
  child.once('exit', () => (exited = true));
  return { child, alive: () => !exited };
}

export async function until(pred: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
