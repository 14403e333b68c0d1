/**
 * The Windows backend's removal steps (disable, logoff, delete, purge), uninstall and the
 * password flags, against the simulated Windows of test/support/windowsSim.ts. The model
 * changes its state only when the recorded script contains the code that would change it on
 * Windows (parsed with the PowerShell grammar), so each test below reads the model to see what
 * our scripts did, and every recorded script must parse (verifyRecording).
 */
import assert from 'node:assert/strict';
import { removeAccount } from '../removal.ts';
import { COMPUTER, PROFILES_DIR, ScriptTokens, UF_PASSWD_NOTREQD } from '../../test/support/windowsSim.ts';
import { spec, verifyRecording, windowsEnv } from '../../test/support/windowsSimExec.ts';
import { AccountError } from './backend.ts';
import { inAnHour, newName, newPassword, rejectsWith } from './contract.ts';

const rejectsMatching = (p: Promise<unknown>, code: string, message: RegExp) =>
  assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AccountError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });

describe('WindowsBackend removal (recorded)', function () {
  describe('disable', () => {
    it('disables AND expires the account now, so a re-enable by someone else still cannot log on', async () => {
      const { exec, backend, model } = windowsEnv();
      const name = newName();
      await backend.createDisabled(spec(name), newPassword());
      await backend.enable(name, inAnHour());
      const before = Date.now();
      await backend.disable(name);
      const u = model.find(name)!;
      assert.equal(u.enabled, false);
      assert.ok(u.expiresMs !== undefined && u.expiresMs >= before && u.expiresMs <= Date.now(), 'AccountExpires = now');
      // Someone re-enables it behind our back: Windows still refuses the logon, it has expired.
      u.enabled = true;
      assert.ok(u.expiresMs <= Date.now());
      // A later enable (a grant extended) sets the new end again.
      const end = inAnHour();
      await backend.enable(name, end);
      assert.equal(model.find(name)?.expiresMs, end.getTime());
      await verifyRecording(exec);
    });

    it('checks the result: an expiry that did not take is an error', async () => {
      const { backend, model } = windowsEnv();
      const name = newName();
      await backend.createDisabled(spec(name), newPassword());
      await backend.enable(name, inAnHour());
      model.ignoreExpiry = true;
      await rejectsMatching(backend.disable(name), 'COMMAND_FAILED', /expir/);
      assert.equal(model.find(name)?.enabled, false, 'disabled all the same');
    });

    it('succeeds for a missing account and refuses one without the marker, changing nothing', async () => {
      const { exec, backend, model } = windowsEnv();
      await backend.disable(newName());
      const other = model.addUser(newName(), 'someone else');
      other.enabled = true;
      await rejectsWith(backend.disable(other.name), 'NOT_MANAGED');
      assert.equal(other.enabled, true);
      assert.equal(other.expiresMs, undefined);
      await verifyRecording(exec);
    });
  });

  describe('logoff', () => {
    it('ends the console session without quser/logoff.exe (Home editions), through WTSLogoffSession', async () => {
      const { exec, backend, model } = windowsEnv();
      model.hasQuser = false;
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      model.spawn(info.id, { console: true });
      await backend.disable(name);
      assert.equal((await backend.logoff(name)).ended, 1);
      assert.deepEqual(model.sessionsOf(name), []);
      assert.deepEqual(model.processesOf(info.id), []);
      await verifyRecording(exec);
    });

    it('kills processes that come back, pass after pass, until none is left', async () => {
      const { backend, model, sleeps, exec } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      model.spawn(info.id);
      model.startProcess(info.id, undefined, 1); // outside any session (runas, a task), restarted once
      await backend.logoff(name);
      assert.deepEqual(model.processesOf(info.id), []);
      assert.deepEqual(model.sessionsOf(name), []);
      assert.equal(exec.sessionCalls('logoff').length, 2);
      assert.equal(sleeps.length, 1);
    });

    it('reports a session that refuses to end, by id, after the retries, so the removal is retried', async () => {
      const { backend, model, sleeps } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      const { session } = model.spawn(info.id, { refuses: true, console: true });
      await rejectsMatching(backend.logoff(name), 'COMMAND_FAILED', new RegExp(`session ${session}\\b`));
      assert.ok(sleeps.length >= 3, 'retried before giving up');
      // And the removal sequence stops there: the account is disabled but not deleted.
      await rejectsWith(removeAccount(backend, { name, id: info.id }, 'disable'), 'COMMAND_FAILED');
      assert.equal(model.find(name)?.enabled, false);
      // Once the session is gone (the user logged off), the removal goes through.
      model.sessions.find((s) => s.id === session)!.refuses = false;
      await removeAccount(backend, { name, id: info.id }, 'logoff');
      assert.equal(model.find(name), undefined);
    });

    it('embeds the WTS interop as constant C#, compiled once per session', async () => {
      const { exec, backend, model } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      model.spawn(info.id);
      await backend.logoff(name);
      const t = await ScriptTokens.of(exec.sessionCalls('logoff')[0]!.script);
      for (const api of ['WTSEnumerateSessions', 'WTSQuerySessionInformation', 'WTSLogoffSession', 'WTSFreeMemory']) assert.ok(t.literalIncludes(api), api);
      assert.ok(t.has('Add-Type', '-TypeDefinition'));
      assert.ok(t.has('JitAccess.Wts'), 'Add-Type only when the type is not there yet');
      assert.ok(!t.has('System32\\quser.exe') && !t.has('System32\\logoff.exe'), 'no quser/logoff.exe any more');
    });
  });

  describe('delete and purge', () => {
    it('deletes the account even when its profile refuses deletion, then purges the profile by SID after resetting its ACL', async () => {
      const { exec, backend, model, sleeps } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      await backend.enable(name, inAnHour());
      model.spawn(info.id, { deniedDirs: 1 }); // %LOCALAPPDATA%\Microsoft\WinGet\State\defaultState (winget-cli#3365)
      model.profiles.get(info.id)!.aclResetFailsFor = 1; // a file held open the first time
      await backend.disable(name);
      await backend.logoff(name);
      await backend.delete(name);
      assert.equal(model.find(name), undefined, 'the account is gone whatever its profile does');
      assert.equal(model.profiles.get(info.id)?.cim, true, 'delete leaves the profile to purge');

      // First purge: the hive unloads a moment after logoff (one wait), then the ACL reset fails
      // and Windows deletes the instance but not the folder: an error, so the caller retries.
      await rejectsMatching(backend.purge({ name, id: info.id }), 'ACCESS_DENIED', new RegExp(`folder ${PROFILES_DIR.replace(/\\/g, '\\\\')}\\\\${name}`));
      assert.deepEqual(sleeps, [1000]);
      assert.equal(model.profiles.get(info.id)?.folder, true);
      // The retry resets the ACL and removes the folder directly.
      await backend.purge({ name, id: info.id });
      assert.equal(model.profiles.has(info.id), false);
      await backend.purge({ name, id: info.id }); // idempotent
      await verifyRecording(exec);
    });

    it('takes ownership with takeown.exe by absolute path, never recursively, before Remove-CimInstance', async () => {
      const { exec, backend, model } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      model.spawn(info.id);
      await removeAccount(backend, { name, id: info.id }, 'disable');
      const script = exec.sessionCalls('purge').at(-1)!.script;
      const t = await ScriptTokens.of(script);
      assert.ok(t.has('System32\\takeown.exe', '/F', '/A'));
      assert.ok(t.has('SetAccessRuleProtection'), 'the DACL is replaced through .NET');
      // takeown /R and icacls /T descend through junctions the user may have planted.
      assert.ok(!t.has('/R') && !t.has('/T') && !t.has('icacls.exe'));
      assert.ok(script.indexOf('takeown.exe') < script.indexOf('Remove-CimInstance'));
      assert.ok(t.has('ReparsePoint'), 'the walk stops at reparse points');
    });

    it('waits for a loaded profile, then reports LOGGED_IN', async () => {
      const { backend, model, sleeps } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      const proc = model.spawn(info.id); // logged on and never logged off
      await backend.delete(name);
      await rejectsWith(backend.purge({ name, id: info.id }), 'LOGGED_IN');
      assert.deepEqual(sleeps, [1000, 2000, 4000, 8000, 15000]);
      assert.equal(model.profiles.get(info.id)?.folder, true);
      proc.kill();
      model.sessions = [];
      await backend.purge({ name, id: info.id });
      assert.equal(model.profiles.has(info.id), false);
    });

    it('removes a ProfileList key left without instance or folder', async () => {
      const { backend, model } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      model.spawn(info.id).kill();
      model.sessions = [];
      await backend.delete(name);
      Object.assign(model.profiles.get(info.id)!, { loaded: false, cim: false, folder: false, key: true });
      await backend.purge({ name, id: info.id });
      assert.equal(model.profiles.has(info.id), false);
    });

    it('touches nothing of an SID that is an account again, and refuses SIDs that cannot be ours', async () => {
      const { exec, backend, model } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      model.spawn(info.id).kill();
      model.sessions = [];
      model.tasks.push({ path: '\\', name: 'mine', userId: info.id });
      await backend.purge({ name: 'jtsomeoneelse', id: info.id });
      assert.equal(model.profiles.get(info.id)?.folder, true);
      assert.equal(model.tasks.length, 1);
      const calls = exec.calls.length;
      for (const id of ['S-1-5-18', 'S-1-5-32-544', 'S-1-5-21-1-2-3-500', 'S-1-5-21-1-2-3-999', "S-1-5-21-1-2-3-1001'", 'S-1-5-21-1-2-1001', '']) {
        await rejectsWith(backend.purge({ name, id }), 'COMMAND_FAILED');
      }
      await rejectsWith(backend.purge({ name: 'a$(x)', id: info.id }), 'INVALID_NAME');
      assert.equal(exec.calls.length, calls, 'nothing ran');
    });

    it('unregisters the scheduled tasks of the deleted account, by SID or name, and no others', async () => {
      const { exec, backend, model } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      model.tasks.push(
        { path: '\\', name: 'by-sid', userId: info.id },
        { path: '\\Sub\\', name: 'by-name', userId: name },
        { path: '\\', name: 'by-qualified-name', userId: `${COMPUTER}\\${name.toUpperCase()}` },
        { path: '\\', name: 'system', userId: 'S-1-5-18' },
        { path: '\\', name: 'alice', userId: 'alice' },
      );
      await removeAccount(backend, { name, id: info.id }, 'disable');
      assert.deepEqual(model.tasks.map((t) => t.name), ['system', 'alice']);
      await verifyRecording(exec);
    });

    it('keeps tasks that name the account when the name belongs to another account by now', async () => {
      const { backend, model } = windowsEnv();
      const name = newName();
      const info = await backend.createDisabled(spec(name), newPassword());
      await backend.delete(name);
      model.addUser(name, 'a new account of the same name');
      model.tasks.push({ path: '\\', name: 'by-sid', userId: info.id }, { path: '\\', name: 'by-name', userId: name });
      await backend.purge({ name, id: info.id });
      assert.deepEqual(model.tasks.map((t) => t.name), ['by-name']);
    });
  });

  describe('password flags', () => {
    it('clears UF_PASSWD_NOTREQD and "must change password" after setting the password', async () => {
      const { exec, backend, model } = windowsEnv();
      const name = newName();
      await backend.createDisabled(spec(name), newPassword());
      const u = model.find(name)!;
      assert.equal(u.userFlags & UF_PASSWD_NOTREQD, 0);
      assert.equal(u.passwordExpired, false);
      await backend.setPassword(name, newPassword());
      assert.equal(u.userFlags & UF_PASSWD_NOTREQD, 0);
      await verifyRecording(exec);
    });

    it('fails creation, leaving no account, when the flag is still set afterwards', async () => {
      const { backend, model } = windowsEnv();
      model.ignoreAdsi = true;
      const name = newName();
      await rejectsMatching(backend.createDisabled(spec(name), newPassword()), 'COMMAND_FAILED', /PASSWD_NOTREQD/);
      assert.equal(model.find(name), undefined);
    });
  });

  describe('uninstall', () => {
    it('has no uid range, and dropMarker refuses while accounts of ours remain, then removes the password helper', async () => {
      const { exec, backend, model } = windowsEnv();
      assert.equal(backend.uidRange, null);
      const name = newName();
      await backend.createDisabled(spec(name), newPassword());
      await rejectsMatching(backend.dropMarker(), 'COMMAND_FAILED', new RegExp(`still has members: ${name}`));
      assert.ok(model.files.has(backend.helperPath.toLowerCase()));
      await backend.delete(name);
      await backend.dropMarker();
      assert.equal(model.files.has(backend.helperPath.toLowerCase()), false);
      await backend.dropMarker();
      await verifyRecording(exec);
    });
  });
});
