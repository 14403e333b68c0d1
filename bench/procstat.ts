/** Process figures straight from /proc: resident memory and CPU time. Linux only. */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on every Linux the agent supports

export interface ProcSample {
  at: number;
  /** Resident set size in bytes. */
  rss: number;
  /** utime + stime in seconds. */
  cpu: number;
}

export function sample(pid: number): ProcSample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at ") ".
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { at: Date.now(), rss: kb * 1024, cpu };
  } catch {
    return null;
  }
}

/** CPU use between two samples, as a percentage of one core. */
export function cpuPercent(a: ProcSample, b: ProcSample): number {
  return ((b.cpu - a.cpu) / Math.max(0.001, (b.at - a.at) / 1000)) * 100;
}

/** Established TCP connections whose local port is `port` (the server's side of each connection). */
export function establishedOn(port: number): number {
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
    for (const line of text.split('\n')) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(hex) && cols[3] === '01') n++;
    }
  }
  return n;
}

/** Resident memory of `pid` plus all its descendants (tsx loader children included). */
export function childPids(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return kids.flatMap((k) => [k, ...childPids(k)]);
  } catch {
    return [];
  }
}
