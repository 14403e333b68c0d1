/** Small helpers of the chaos run: the seeded PRNG, sleeping, interval overlap and the infrastructure lock. */
import type { Interval } from './harness.ts';

/** mulberry32: small, fast, good enough for picking faults. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** How much of [from, to] the intervals cover. */
export function overlap(intervals: Interval[], from: number, to: number): number {
  let total = 0;
  for (const i of intervals) total += Math.max(0, Math.min(i.to, to) - Math.max(i.from, from));
  return total;
}

/** Serialises server and database faults: restarting a server whose database is down is another test. */
let infraLock: Promise<void> = Promise.resolve();
export function infra<T>(fn: () => Promise<T>): Promise<T> {
  const p = infraLock.then(fn);
  infraLock = p.then(
    () => {},
    () => {},
  );
  return p;
}
