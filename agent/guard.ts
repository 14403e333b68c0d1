/**
 * No new admin survives the window: while a grant of Administrators is live, and at its end, every
 * member of a privileged group added since the grant was enabled that is neither one of our grants
 * nor allowed by policy is a rogue admin. By the grant's policy it is taken out of the group (and
 * locked, never deleted, if the account itself was made during the window) or only reported. A
 * change to the sudoers files is reported. Runs inside GrantRunner's lock.
 */
import type { RunnerParts } from './runnerParts.ts';
import type { GroupMember } from './os/elevation.ts';
import type { GrantRecord } from './state.ts';

const key = (m: GroupMember) => `${m.group}:${m.name}`;

/** At enable, before anything changes: what the privileged groups hold (Administrators grants only). */
export async function takeSnapshot(p: RunnerParts, r: GrantRecord): Promise<void> {
  const e = p.backend.elevation;
  if (!e || r.plan.group !== 'Administrators' || r.guard) return;
  const s = await e.snapshot();
  r.guard = { members: s.members.map(({ group, name }) => ({ group, name })), accounts: s.accounts, sudoers: s.sudoers, found: [], sudoersReported: false };
  await p.store.save();
}

/** Compares the privileged groups with the grant's snapshot and deals with what was added. */
export async function checkGuard(p: RunnerParts, r: GrantRecord, grants: GrantRecord[]): Promise<void> {
  const e = p.backend.elevation;
  const g = r.guard;
  if (!e || !g) return;
  const now = await e.snapshot();
  const before = new Set(g.members.map(key));
  // Our grants' accounts by name and by id (Windows members are SIDs).
  const ours = new Set(grants.filter((o) => o.step !== 'removed' && o.step !== 'failed').flatMap((o) => [o.username, ...(o.accountId ? [o.accountId] : [])]));
  const allowed = new Set(r.plan.guard.allowed.map((a) => a.toLowerCase()));
  for (const m of now.members) {
    const isAllowed = allowed.has(m.name.toLowerCase()) || (m.label !== undefined && allowed.has(m.label.toLowerCase()));
    if (before.has(key(m)) || ours.has(m.name) || isAllowed || g.found.includes(key(m))) continue;
    // A local account now that was not one then (a domain account added to the group is not).
    const madeInWindow = !g.accounts.includes(m.name) && now.accounts.includes(m.name);
    let action = 'reported';
    if (r.plan.guard.action === 'remove') {
      try {
        await e.removeFromGroup(m);
        action = 'removed from the group';
        if (madeInWindow) {
          await e.lock(m.name);
          action = 'removed from the group and locked (made during the window)';
        }
      } catch (err) {
        // Not remembered as found: the next check tries again, and reports again.
        p.log.error({ grantId: r.plan.grantId, account: m.label ?? m.name, group: m.group, err: (err as Error).message }, 'rogue admin not removed');
        p.report(r, 'rogue-admin', JSON.stringify({ account: m.label ?? m.name, id: m.name, group: m.group, madeInWindow, action: `removal failed: ${(err as Error).message}` }));
        continue;
      }
    }
    g.found.push(key(m));
    p.log.warn({ grantId: r.plan.grantId, account: m.label ?? m.name, group: m.group, action }, 'rogue admin found');
    p.report(r, 'rogue-admin', JSON.stringify({ account: m.label ?? m.name, id: m.name, group: m.group, madeInWindow, action }));
  }
  if (now.sudoers !== g.sudoers && !g.sudoersReported) {
    g.sudoersReported = true;
    p.report(r, 'sudoers-changed', 'the sudoers files changed during the window; not undone, review them');
  }
  await p.store.save();
}

/** checkGuard where a failure must not hold anything back (the periodic check, a removal): logged, and tried again next time. */
export async function checkGuardLogged(p: RunnerParts, r: GrantRecord, grants: GrantRecord[]): Promise<void> {
  await checkGuard(p, r, grants).catch((err: Error) => p.log.error({ grantId: r.plan.grantId, err: err.message }, 'rogue-admin check failed'));
}
