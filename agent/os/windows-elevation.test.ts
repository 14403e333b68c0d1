/**
 * elevate-account and the rogue-admin guard on Windows, through GrantRunner and WindowsBackend on
 * the recorded, simulated Windows (test/support/windowsSim.ts): every script parses under the
 * PowerShell grammar, carries its values only in the prelude, and changes the model only through
 * the cmdlets that would change Windows.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Plan } from '../../protocol/messages.ts';
import { elevationPlan, elevationRunner } from '../../test/support/elevationRunner.ts';
import { verifyRecording, windowsEnv, type WindowsEnv } from '../../test/support/windowsSimExec.ts';
import { takeInventory } from '../inventory.ts';
import { GROUP_SIDS } from './windows-scripts.ts';

const ADMINS = GROUP_SIDS.Administrators;

describe('elevate-account on Windows (recorded)', () => {
  let dir: string;
  let env: WindowsEnv;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jit-win-elevate-'));
    env = windowsEnv();
  });
  afterEach(async () => {
    await verifyRecording(env.exec);
    await rm(dir, { recursive: true, force: true });
  });

  const runner = async () => {
    const { at, ...rest } = await elevationRunner(dir, env.backend);
    return { ...rest, pastTheEnd: () => at(2 * 3_600_000) };
  };
  const plan = elevationPlan;
  const admins = () => env.model.members.get(ADMINS)!;

  it('adds a local account to Administrators by SID, then removes it and logs it off', async () => {
    const u = env.model.addUser('Maria', 'Maria, accounting');
    u.enabled = true;
    const { store, r, pastTheEnd } = await runner();
    const p = plan('maria');
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'enabled');
    assert.ok(admins().has(u.sid));
    const session = env.model.spawn(u.sid);
    pastTheEnd();
    await r.runDue();
    assert.equal(store.state.grants[p.grantId]!.step, 'removed');
    assert.equal(admins().has(u.sid), false);
    assert.equal(session.alive(), false, 'logged off: the token that holds Administrators is gone');
    assert.ok(env.model.find('Maria'), 'the account itself is kept');
  });

  it('elevates a domain account given as DOMAIN\\user or SID, and keeps a membership that predates the grant', async () => {
    const bobSid = 'S-1-5-21-3623811015-3361044348-30300820-1104';
    env.model.domainAccounts.set(bobSid, { domain: 'CORP', name: 'bob' });
    const carol = env.model.addUser('carol', '');
    admins().add(carol.sid);
    const { store, r, pastTheEnd } = await runner();
    const bob = plan('CORP\\bob');
    const keep = plan(carol.sid);
    for (const p of [bob, keep]) await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    assert.ok(admins().has(bobSid));
    pastTheEnd();
    await r.runDue();
    assert.equal(admins().has(bobSid), false);
    assert.equal(admins().has(carol.sid), true, 'carol was an administrator before: left as she was');
    assert.match(store.state.outbox.find((o) => o.grantId === keep.grantId && o.type === 'disabled')!.detail!, /left in Administrators/);
  });

  it('refuses the built-in Administrator and an unknown account with the reason', async () => {
    env.model.users.push({ name: 'Administrator', sid: 'S-1-5-21-1004336348-1177238915-682003330-500', enabled: true, description: '', userFlags: 0x200, passwordExpired: false });
    const { store, r } = await runner();
    const builtIn = plan('Administrator');
    const missing = plan('CORP\\nobody');
    for (const p of [builtIn, missing]) await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    const why = (p: Plan) => store.state.outbox.find((o) => o.grantId === p.grantId && o.type === 'failed')?.detail;
    assert.match(why(builtIn)!, /system account/);
    assert.match(why(missing)!, /no local account CORP\\nobody/);
  });

  it('guard: a local account made and put in Administrators during the window is taken out and disabled; a domain one only taken out', async () => {
    const nina = env.model.addUser('nina', '');
    const { store, r, pastTheEnd } = await runner();
    const p = plan('nina');
    await r.accept({ id: randomUUID(), kind: 'provision', plan: p });
    await r.runDue();
    const backdoor = env.model.addUser('backdoor', '');
    backdoor.enabled = true;
    admins().add(backdoor.sid);
    const eveSid = 'S-1-5-21-3623811015-3361044348-30300820-1337';
    env.model.domainAccounts.set(eveSid, { domain: 'CORP', name: 'eve' });
    admins().add(eveSid);
    pastTheEnd();
    await r.runDue();
    assert.deepEqual([...admins()].filter((s) => s !== nina.sid), []);
    assert.equal(backdoor.enabled, false);
    const found = store.state.outbox.filter((o) => o.type === 'rogue-admin').map((o) => JSON.parse(o.detail!));
    assert.deepEqual(found.map((f) => [f.account, f.madeInWindow]).sort(), [['CORP\\eve', false], ['WKS01\\backdoor', true]]);
  });

  it('reports its local accounts, the built-in ones flagged as system, and that it can elevate', async () => {
    env.model.addUser('paula', '');
    env.model.users.push({ name: 'Guest', sid: 'S-1-5-21-1004336348-1177238915-682003330-501', enabled: false, description: '', userFlags: 0x202, passwordExpired: false });
    const inv = await takeInventory(env.backend);
    assert.deepEqual(inv.capabilities, ['elevate-account']);
    assert.deepEqual(inv.accounts.map((a) => [a.name, a.system]), [['paula', false], ['Guest', true]]);
  });
});
