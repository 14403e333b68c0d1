/**
 * elevate-account and the guard on the simulated Windows (windowsSim.ts): answers the elevation
 * operations (windows-elevation-scripts.ts) from the model. Same rule as the rest of the model: a
 * change happens only if the script holds the code that makes it (ScriptTokens), so a script that
 * forgets Remove-LocalGroupMember leaves the member in and the test reading the model fails.
 */
import assert from 'node:assert/strict';
import { GROUP_SIDS } from '../../agent/os/windows-scripts.ts';
import type { ElevationOp } from '../../agent/os/windows-elevation-scripts.ts';
import type { RESTORE_BODY } from '../../agent/os/windows-restore.ts';
import { COMPUTER, type Json, type MUser, type Params, type ScriptTokens, type WindowsModel } from './windowsSim.ts';

const ADMINS = GROUP_SIDS.Administrators;

export function answerElevationOp(model: WindowsModel, op: Exclude<ElevationOp, keyof typeof RESTORE_BODY>, p: Params, t: ScriptTokens): Json {
  switch (op) {
    case 'elevAccount': {
      assert.ok(t.has('Resolve-JitAccount') && t.has('Translate'), 'resolves through the local users, then the SID translation');
      const a = resolve(model, p.Account as string);
      return { ok: true, account: a ? { ...a, admin: model.members.get(ADMINS)!.has(a.sid) } : null };
    }
    case 'elevList':
      return { ok: true, users: model.users.map((u) => ({ name: u.name, sid: u.sid, managed: u.description.startsWith('jit-access grant='), admin: model.members.get(ADMINS)!.has(u.sid) })) };
    case 'elevMember': {
      const set = model.members.get(p.GroupSid as string);
      assert.ok(set, `a wizard group SID: ${p.GroupSid}`);
      const sid = p.Sid as string;
      if (p.Action === 'add' && t.has('Add-LocalGroupMember', '-Member')) set.add(sid);
      if (p.Action === 'remove' && t.has('Remove-LocalGroupMember', '-Member')) set.delete(sid);
      return { ok: true, member: set.has(sid) };
    }
    case 'elevMembers': {
      const groups = p.GroupSids as string[];
      const members = groups.flatMap((g) => [...(model.members.get(g) ?? [])].map((sid) => ({ group: g, sid, name: nameOf(model, sid) })));
      return { ok: true, members, users: model.users.map((u) => u.sid) };
    }
    case 'elevLock': {
      const u = model.users.find((x) => x.sid === p.Sid);
      if (!u) return { ok: true, locked: false };
      if (t.has('Disable-LocalUser')) u.enabled = false;
      return { ok: true, locked: !u.enabled };
    }
    case 'elevLogoff': {
      const u = model.users.find((x) => x.sid === p.Sid);
      // A domain account's sessions and processes are not modelled: nothing to end.
      if (!u) return { ok: true, sessions: 0, processes: 0, sessionsLeft: [], processesLeft: 0 };
      return model.logoffPass(u as MUser, t);
    }
  }
}

/** Local by name, COMPUTER\name, .\name or SID; else a domain account the model knows. */
function resolve(model: WindowsModel, account: string): Json & { sid: string } | null {
  const local = (u: MUser | undefined) => (u ? { name: u.name, sid: u.sid, domain: '', local: true, managed: u.description.startsWith('jit-access grant=') } : null);
  if (account.startsWith('S-1-')) {
    const u = model.users.find((x) => x.sid === account);
    if (u) return local(u);
    const d = model.domainAccounts.get(account);
    return d ? { name: d.name, sid: account, domain: d.domain, local: false, managed: false } : null;
  }
  const [dom, user] = account.includes('\\') ? (account.split('\\') as [string, string]) : ['', account];
  if (dom === '' || dom === '.' || dom.toLowerCase() === COMPUTER.toLowerCase()) return local(model.find(user));
  const hit = [...model.domainAccounts].find(([, d]) => d.domain.toLowerCase() === dom.toLowerCase() && d.name.toLowerCase() === user.toLowerCase());
  return hit ? { name: hit[1].name, sid: hit[0], domain: hit[1].domain, local: false, managed: false } : null;
}

function nameOf(model: WindowsModel, sid: string): string {
  const u = model.users.find((x) => x.sid === sid);
  if (u) return `${COMPUTER}\\${u.name}`;
  const d = model.domainAccounts.get(sid);
  return d ? `${d.domain}\\${d.name}` : sid;
}
