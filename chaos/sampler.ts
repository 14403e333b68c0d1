/**
 * Watches a sandbox's account files every ~100 ms, for the chaos invariants: when each account
 * was last seen, when it was first seen gone, and when it could last log in; and who was in sudo.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/**
 * Accounts in the sandbox that the agent made: jit-managed members plus passwd entries not
 * there at the start; `alive` are those whose shadow entry would let them log in (password not
 * locked, account not expired).
 */
async function accountsIn(root: string, baseline: Set<string>): Promise<Sample | null> {
  try {
    const read = (f: string) => readFile(path.join(root, 'etc', f), 'utf8');
    const [passwd, group, shadow] = await Promise.all([read('passwd'), read('group'), read('shadow')]);
    const names = new Set<string>();
    for (const l of passwd.split('\n')) {
      const n = l.split(':')[0];
      if (n && !baseline.has(n)) names.add(n);
    }
    const managed = group.split('\n').find((l) => l.startsWith('jit-managed:'));
    const sudo = new Set((group.split('\n').find((l) => l.startsWith('sudo:'))?.split(':')[3] ?? '').split(',').filter(Boolean));
    for (const m of (managed?.split(':')[3] ?? '').split(',')) if (m) names.add(m);
    const today = Math.floor(Date.now() / 86_400_000);
    const alive = new Set<string>();
    for (const l of shadow.split('\n')) {
      const f = l.split(':');
      if (names.has(f[0]!) && f[1] && !/^[!*]/.test(f[1]) && !(f[7] && Number(f[7]) <= today)) alive.add(f[0]!);
    }
    return { names, alive, sudo };
  } catch {
    return null; // caught mid-rewrite: skip this sample
  }
}

interface Sample {
  names: Set<string>;
  alive: Set<string>;
  /** Members of the sudo group (elevations, rogue admins). */
  sudo: Set<string>;
}

/** Samples the account files every ~100 ms: per account, when it was last seen and when first seen gone after that. */
export class Sampler {
  lastSeen = new Map<string, number>();
  goneAt = new Map<string, number>();
  /** Per account, the last sample in which it could log in. */
  lastAlive = new Map<string, number>();
  /** Per account, the last sample in which it was in sudo. */
  lastInSudo = new Map<string, number>();
  /** The latest sample and its time. */
  latest: { at: number; sample: Sample } | null = null;
  private changeWaiters: (() => void)[] = [];
  private prev = new Set<string>();
  private stopped = false;
  private done: Promise<void>;

  constructor(
    private root: string,
    private baseline: Set<string>,
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const t = Date.now();
      const sample = await accountsIn(this.root, this.baseline);
      if (sample) {
        const now = sample.names;
        for (const n of sample.alive) this.lastAlive.set(n, t);
        for (const n of sample.sudo) this.lastInSudo.set(n, t);
        this.latest = { at: t, sample };
        for (const n of now) {
          this.lastSeen.set(n, t);
          this.goneAt.delete(n);
        }
        for (const n of this.lastSeen.keys()) if (!now.has(n) && !this.goneAt.has(n)) this.goneAt.set(n, t);
        const changed = now.size !== this.prev.size || [...now].some((n) => !this.prev.has(n));
        this.prev = now;
        if (changed) for (const w of this.changeWaiters.splice(0)) w();
      }
      await sleep(100 - (Date.now() - t));
    }
  }

  /** Resolves at the next observed change of the account set (or after `ms`). */
  nextChange(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.changeWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

