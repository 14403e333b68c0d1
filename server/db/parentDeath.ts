/**
 * Making a child process end when this process dies, however it dies (SIGKILL
 * included, when no exit hook runs). Linux has it built in: the parent-death
 * signal (prctl PR_SET_PDEATHSIG), which the kernel sends to the child when its
 * parent goes. util-linux's `setpriv --pdeathsig SIG -- program args…` sets it
 * and then execs the program: same pid, same argv and working directory, no
 * process in between and no native module. So the child is spawned as
 * `[...prefix, program, ...args]` with the prefix from here.
 *
 * Limits: the signal follows the thread that spawned the child, so it is used
 * only from Node's main thread (a worker thread ending would end the child);
 * elsewhere, and where setpriv or its --pdeathsig is missing (macOS, old
 * util-linux), the prefix is empty and the caller's other clean-ups apply.
 */
import { isMainThread } from 'node:worker_threads';
import { run } from './ferretBuild.ts';

let support: Promise<boolean> | undefined;

/** Whether `setpriv --pdeathsig` is there; asked once per process. */
function setprivCanDo(): Promise<boolean> {
  support ??= process.platform !== 'linux'
    ? Promise.resolve(false)
    : run('setpriv', ['--help'], { timeoutMs: 5000 }).then((r) => r.code === 0 && r.stdout.includes('--pdeathsig'));
  return support;
}

/** The command prefix that sends `signal` to the child when this process dies, or [] where there is none. */
export async function dieWithParentPrefix(signal: 'TERM' | 'KILL' = 'TERM'): Promise<string[]> {
  if (!isMainThread || !(await setprivCanDo())) return [];
  return ['setpriv', `--pdeathsig=${signal}`, '--'];
}
