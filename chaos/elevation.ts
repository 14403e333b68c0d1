/**
 * The chaos run's elevations and rogue admins: people's own accounts made in the sandbox before
 * the agent starts (some already in sudo), a "rogue admin" fault that adds a new account to sudo
 * while a grant of Administrators is live, and the invariants that go with them:
 *
 *   (6) no membership we added outlives its end plus the agent's downtime plus LATENESS_BUDGET_MS,
 *       and one that predates the grant is still there at the end (exact restore);
 *   (7) under the guard policy `remove`, no member added during a live window survives that
 *       window's end, and an account made during it is locked.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../agent/os/exec.ts';
import type { Interval } from './harness.ts';
import type { Sampler } from './sampler.ts';
import { overlap } from './util.ts';

/** Sandbox uids for people and rogues: far above what the agent hands its temporary accounts. */
let nextUid = 2_099_000;

export interface Person {
  name: string;
  wasMember: boolean;
}

/** A person's own account, as an admin would have made it long before any grant. */
export async function addPerson(root: string, name: string, wasMember: boolean): Promise<Person> {
  await run('useradd', ['--prefix', root, '-u', String(nextUid++), '-m', '-s', '/bin/bash', ...(wasMember ? ['-G', 'sudo'] : []), '--', name]);
  return { name, wasMember };
}

export interface Rogue {
  name: string;
  at: number;
  /** The account of the grant whose window it was added in (temporary or elevated). */
  during: string;
  elevation: boolean;
}

/**
 * Waits (until `deadline`) for the grant to be visibly live on the endpoint: its temporary account
 * able to log in, or the person in sudo. Only then is its guard's snapshot surely taken, so a new
 * member is a rogue for it. Adds `name` to sudo and returns the finding to check, or null.
 */
export async function addRogueDuring(root: string, sampler: Sampler, grant: { username: () => Promise<string | undefined>; elevation: boolean }, name: string, deadline: number): Promise<Rogue | null> {
  for (; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const who = await grant.username();
    const s = sampler.latest?.sample;
    if (!who || !s) continue;
    if (grant.elevation ? s.sudo.has(who) : s.alive.has(who)) {
      await run('useradd', ['--prefix', root, '-u', String(nextUid++), '-G', 'sudo', '--', name]);
      return { name, at: Date.now(), during: who, elevation: grant.elevation };
    }
  }
  return null;
}

/** (6) and (7), once everything has settled. Returns the violations. */
export async function checkElevations(
  root: string,
  sampler: Sampler,
  elevations: { person: Person; endAt: number; state: string }[],
  rogues: Rogue[],
  downs: Interval[],
  budgetMs: number,
): Promise<{ violations: string[]; lateMs: number[] }> {
  const violations: string[] = [];
  const lateMs: number[] = [];
  const read = (f: string) => readFile(path.join(root, 'etc', f), 'utf8');
  const [group, shadow] = await Promise.all([read('group'), read('shadow')]);
  const sudo = new Set((group.split('\n').find((l) => l.startsWith('sudo:'))?.split(':')[3] ?? '').split(',').filter(Boolean));
  for (const e of elevations) {
    const name = e.person.name;
    if (e.person.wasMember) {
      if (!sudo.has(name)) violations.push(`${name} was in sudo before its grant and is not any more (grant ${e.state})`);
      continue;
    }
    if (sudo.has(name)) {
      violations.push(`${name} is still in sudo after its grant ended (${e.state})`);
      continue;
    }
    const last = sampler.lastInSudo.get(name);
    if (last === undefined) continue;
    // Out before its end (by the last sample in sudo): counted as on time.
    if (last < e.endAt) {
      lateMs.push(Math.min(0, last - e.endAt));
      continue;
    }
    const beyond = last - e.endAt - overlap(downs, e.endAt, last);
    lateMs.push(beyond);
    if (beyond > budgetMs) violations.push(`${name} was in sudo ${last - e.endAt} ms after its end, ${beyond} ms beyond the agent's downtime`);
  }
  for (const r of rogues) {
    // Its window was still open after the rogue came if the grant's account was seen live after it.
    const seenAfter = r.elevation ? (sampler.lastInSudo.get(r.during) ?? 0) > r.at : (sampler.lastSeen.get(r.during) ?? 0) > r.at;
    if (!seenAfter) continue;
    if (sudo.has(r.name)) violations.push(`rogue admin ${r.name}, added during the window of ${r.during}, is still in sudo`);
    const expire = shadow.split('\n').find((l) => l.startsWith(`${r.name}:`))?.split(':')[7];
    if (expire !== '1') violations.push(`rogue admin ${r.name}, made during the window of ${r.during}, is not locked (expiry ${expire})`);
  }
  return { violations, lateMs };
}
