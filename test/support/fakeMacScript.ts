/**
 * Runs a launchd job's ProgramArguments FOR REAL (with this machine's /bin/sh, dash, or bash in
 * POSIX mode as macOS's /bin/sh is) against the simulated Mac.
 *
 * How: every tool of the model gets a stub at its macOS path under a temporary root (ROOT/usr/bin/
 * dscl, ROOT/bin/date, …); a stub hands its argv to this process over a Unix socket, where the
 * FakeMac model answers it and records it in `mac.calls` like any other command; the stub prints
 * the answer and exits with its code. The job gets ROOT as one more positional argument (the
 * backstop script's tool prefix, '' on a Mac), and PATH points nowhere, so a tool called by
 * any other path than ROOT + its absolute macOS path is not found.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { RunResult } from '../../agent/os/exec.ts';
import { BIN, type FakeMac } from './fakeMac.ts';

/** The client a stub runs: argv to the socket, the answer to stdout/stderr and the exit code. */
const CLIENT = `'use strict';
const net = require('node:net');
const [sock, file, ...argv] = process.argv.slice(2);
const c = net.createConnection(sock, () => c.end(JSON.stringify({ file, argv })));
let buf = '';
c.setEncoding('utf8');
c.on('data', (d) => (buf += d));
c.on('end', () => {
  const r = JSON.parse(buf);
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  process.exitCode = r.code;
});
c.on('error', (e) => { process.stderr.write(String(e) + '\\n'); process.exitCode = 126; });
`;

/** Which shell plays macOS's /bin/sh. */
export type Shell = 'dash' | 'bash --posix';
export const SHELLS: Shell[] = ['dash', 'bash --posix'];

/**
 * Runs `programArguments` (['/bin/sh', '-c', SCRIPT, ARG0, …]) with `shell`, the tool prefix
 * appended, against `mac`. Resolves with the job's exit code and output.
 */
export async function runJobOnMac(mac: FakeMac, programArguments: string[], shell: Shell = 'dash'): Promise<RunResult> {
  if (programArguments[0] !== BIN.sh || programArguments[1] !== '-c') throw new Error(`not a /bin/sh -c job: ${programArguments.slice(0, 2).join(' ')}`);
  const root = await mkdtemp(path.join(os.tmpdir(), 'jit-macjob-'));
  const sock = path.join(root, 'model.sock');
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => (buf += d));
    conn.on('end', () => {
      const { file, argv } = JSON.parse(buf) as { file: string; argv: string[] };
      mac
        .run(file, argv, { okCodes: [...Array(256).keys(), -1] })
        .then((r) => conn.end(JSON.stringify(r)), (e: unknown) => conn.end(JSON.stringify({ code: 125, stdout: '', stderr: `${String(e)}\n` })));
    });
  });
  try {
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    const client = path.join(root, 'client.cjs');
    await writeFile(client, CLIENT);
    for (const tool of Object.values(BIN)) {
      if (tool === BIN.sh) continue;
      const stub = path.join(root, tool);
      await mkdir(path.dirname(stub), { recursive: true });
      const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
      await writeFile(stub, `#!/bin/sh\nexec ${q(process.execPath)} ${q(client)} ${q(sock)} ${q(tool)} "$@"\n`);
      await chmod(stub, 0o755);
    }
    const [file, ...pre] = shell === 'dash' ? ['/bin/dash'] : ['/bin/bash', '--posix'];
    return await new Promise<RunResult>((resolve, reject) => {
      const child = spawn(file!, [...pre, ...programArguments.slice(1), root], { env: { PATH: path.join(root, 'nowhere') }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(root, { recursive: true, force: true });
  }
}
