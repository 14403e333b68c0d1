/**
 * A real password login (`su`, through PAM's pam_unix: password, lock and account expiry) as a
 * sandbox account, without touching this machine's /etc: `unshare -m` gives the login a private
 * mount namespace in which the sandbox's passwd, shadow, group and gshadow are bind-mounted over
 * /etc's. su runs as `nobody` on a pseudo-terminal (python's pty) and gets the password at its
 * prompt, as a person would type it.
 */
import { run } from '../../agent/os/exec.ts';

const PTY_SU = String.raw`
import os, pty, sys, time
name = sys.argv[1]
pw = sys.stdin.read()
pid, fd = pty.fork()
if pid == 0:
    os.setgid(65534); os.setuid(65534)
    os.execvp('su', ['su', name, '-c', 'echo JIT-LOGIN-OK'])
out, sent, end = b'', False, time.time() + 15
while time.time() < end:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    if not sent and b'assword' in out:
        os.write(fd, (pw + '\n').encode()); sent = True
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
`;

const MOUNTS = ['passwd', 'shadow', 'group', 'gshadow'].map((f) => `mount --bind "$1/etc/${f}" /etc/${f}`).join(' && ');

/** Whether `su NAME` with `password` logs in, judged by the sandbox root's account files. */
export async function suLogin(root: string, name: string, password: string): Promise<{ ok: boolean; output: string }> {
  const script = `${MOUNTS} && exec python3 -c "$2" "$3"`;
  const r = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', root, PTY_SU, name], { stdin: password, okCodes: [0, 1] });
  return { ok: r.stdout.includes('JIT-LOGIN-OK'), output: r.stdout.replace(/\r/g, '').trim() };
}
