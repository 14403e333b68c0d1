/**
 * The Windows backstop (armBackstop / disarmBackstop): a scheduled task running as SYSTEM at a
 * grant's end that disables, expires and logs off the account even if the agent is dead then.
 * Against the simulated Windows (test/support/windowsSim.ts, windowsSimTasks.ts): the model
 * registers, reads back and unregisters tasks only as the recorded scripts say, and runs a
 * registered task's action, our constant helper file, against the model as Task Scheduler
 * would, with the agent out of the picture.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { parsePowerShell } from '../../test/support/psParse.ts';
import { splitScript } from '../../test/support/windowsSim.ts';
import { spec, verifyRecording, windowsEnv, type WindowsEnv } from '../../test/support/windowsSimExec.ts';
import { boundaryInstant, splitCommandLine, TASK_POWERSHELL } from '../../test/support/windowsSimTasks.ts';
import { AccountError } from './backend.ts';
import { inAnHour, newName, newPassword, rejectsWith } from './contract.ts';
import { BACKSTOP_END_DAYS, BACKSTOP_FILE, BACKSTOP_HELPER_LINES, BACKSTOP_TASK_PATH, backstopHelperText, backstopTaskName } from './windows-backstop.ts';
import { backstopArguments, backstopExecutable } from './windows-backstop-arm.ts';
import { helperArgv } from './windows-exec.ts';
import { HELPER_FILE } from './windows-scripts.ts';

const DAY_MS = 86_400_000;
const ceilSecond = (d: Date) => Math.ceil(d.getTime() / 1000) * 1000;

/** A created and enabled account of ours. */
async function enabledAccount(env: WindowsEnv, name = newName(), grant = 'g1') {
  const info = await env.backend.createDisabled(spec(name, grant), newPassword());
  await env.backend.enable(name, inAnHour());
  return info;
}

const taskOf = (env: WindowsEnv, name: string) => env.model.tasks.filter((t) => t.path === BACKSTOP_TASK_PATH && t.name === backstopTaskName(name));
const backstopPath = (env: WindowsEnv) => path.win32.join(path.win32.dirname(env.backend.helperPath), BACKSTOP_FILE);

describe('WindowsBackend backstop (recorded, simulated Task Scheduler)', function () {
  describe('arm', () => {
    it('registers a SYSTEM task in \\jit-access\\ that runs the constant helper by absolute path, reads it back and returns timer', async () => {
      const env = windowsEnv();
      const name = newName();
      const info = await enabledAccount(env, name);
      const at = new Date(Date.now() + 3_600_000);
      assert.equal(await env.backend.armBackstop(name, at), 'timer');
      const [task, ...more] = taskOf(env, name);
      assert.ok(task && more.length === 0, 'exactly one task');
      assert.equal(task.userId, 'SYSTEM');
      assert.equal(task.logonType, 'ServiceAccount', 'no stored password: runs whether or not anyone is logged on');
      assert.equal(task.runLevel, 'Highest');
      assert.deepEqual(task.settings, { startWhenAvailable: true, executionTimeLimit: 'PT5M', disallowStartIfOnBatteries: false, stopIfGoingOnBatteries: false, enabled: true });
      assert.equal(task.triggers?.length, 1);
      assert.equal(task.triggers[0]!.type, 'MSFT_TaskTimeTrigger');
      assert.equal(boundaryInstant(env.model, task.triggers[0]!.start), ceilSecond(at));
      assert.equal(boundaryInstant(env.model, task.triggers[0]!.end), ceilSecond(at) + BACKSTOP_END_DAYS * DAY_MS, 'an end boundary, so StartWhenAvailable applies');
      assert.deepEqual(task.actions?.map((a) => a.execute), [TASK_POWERSHELL]);
      assert.deepEqual(splitCommandLine(task.actions[0]!.arguments), helperArgv(backstopPath(env), ['-Name', name, '-Sid', info.id]));
      assert.ok(env.model.taskFolders.has(BACKSTOP_TASK_PATH));
      // The helper checked before use is the one installed, by SHA-256.
      const arm = splitScript(env.exec.sessionCalls('armBackstop')[0]!.script);
      assert.equal(arm.params.HelperHash, createHash('sha256').update(backstopHelperText(), 'ascii').digest('hex').toUpperCase());
      assert.equal(arm.params.HelperPath, backstopPath(env));
      await verifyRecording(env.exec);
    });

    it('puts the trigger at the grant end to the second, in UTC, whatever the machine time zone', async () => {
      const zones: [string, number][] = [['UTC', 0], ['Asia/Kolkata', 330], ['America/Los_Angeles', -480], ['Pacific/Chatham', 765], ['America/St_Johns', -210]];
      const before = process.env.TZ;
      try {
        for (const [tz, minutes] of zones) {
          process.env.TZ = tz; // the agent runs on that machine, so its process has that zone too
          const env = windowsEnv();
          env.model.timeZoneMinutes = minutes;
          const name = newName();
          await enabledAccount(env, name);
          for (const at of [new Date('2031-03-30T01:30:00.250Z'), new Date('2031-10-26T00:59:59.000Z'), new Date(Date.now() + 61_000)]) {
            await env.backend.armBackstop(name, at);
            const [task] = taskOf(env, name);
            const start = task!.triggers![0]!.start;
            assert.match(start, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/, `${tz}: written in UTC, not local time`);
            assert.equal(boundaryInstant(env.model, start), ceilSecond(at), `${tz}: ${start} for ${at.toISOString()}`);
            assert.ok(boundaryInstant(env.model, start) - at.getTime() < 1000 && boundaryInstant(env.model, start) >= at.getTime(), 'never before the end, less than a second after it');
            // The machine changes zone afterwards (a laptop travels): the instant stays.
            env.model.timeZoneMinutes = minutes + 60;
            assert.equal(boundaryInstant(env.model, start), ceilSecond(at));
            env.model.timeZoneMinutes = minutes;
          }
          await verifyRecording(env.exec);
        }
      } finally {
        if (before === undefined) delete process.env.TZ;
        else process.env.TZ = before;
      }
    });

    it('refuses, and removes, a task whose trigger reads back as local time without an offset; takes an equivalent offset', async () => {
      const env = windowsEnv();
      env.model.timeZoneMinutes = 120;
      const name = newName();
      await enabledAccount(env, name);
      env.model.boundaryStyle = 'local-naive';
      await assert.rejects(env.backend.armBackstop(name, inAnHour()), (e: unknown) => e instanceof AccountError && e.code === 'COMMAND_FAILED' && /offset/.test(e.message));
      assert.deepEqual(taskOf(env, name), [], 'a task that could fire at another time is not left behind');
      env.model.boundaryStyle = 'local-offset';
      const at = inAnHour();
      assert.equal(await env.backend.armBackstop(name, at), 'timer');
      assert.match(taskOf(env, name)[0]!.triggers![0]!.start, /\+02:00$/);
      assert.equal(boundaryInstant(env.model, taskOf(env, name)[0]!.triggers![0]!.start), ceilSecond(at));
    });

    it('arming again replaces the task: one task, at the new end', async () => {
      const env = windowsEnv();
      const name = newName();
      await enabledAccount(env, name);
      const other = newName();
      await enabledAccount(env, other);
      await env.backend.armBackstop(other, inAnHour());
      await env.backend.armBackstop(name, new Date(Date.now() + 3_600_000));
      const later = new Date(Date.now() + 7_200_000);
      await env.backend.armBackstop(name, later);
      const tasks = taskOf(env, name);
      assert.equal(tasks.length, 1);
      assert.equal(boundaryInstant(env.model, tasks[0]!.triggers![0]!.start), ceilSecond(later));
      assert.equal(taskOf(env, other).length, 1, "another account's task stays");
      assert.equal(env.exec.sessionCalls('installHelper').length, 2, 'the password helper and the backstop helper, once each');
    });

    it('refuses a missing, unmanaged or hostile-named account and a bad instant, registering nothing', async () => {
      const env = windowsEnv();
      await rejectsWith(env.backend.armBackstop(newName(), inAnHour()), 'NOT_FOUND');
      const stranger = env.model.addUser(newName(), 'Built-in account for administering the computer');
      await rejectsWith(env.backend.armBackstop(stranger.name, inAnHour()), 'NOT_MANAGED');
      const calls = env.exec.calls.length;
      for (const name of ['a$(calc)', "a'b", 'a\u2019b', 'Admin', 'a b', '']) await rejectsWith(env.backend.armBackstop(name, inAnHour()), 'INVALID_NAME');
      const name = newName();
      for (const at of [new Date(Number.NaN), new Date(0), new Date('9999-01-01T00:00:00Z'), undefined as unknown as Date]) {
        await rejectsWith(env.backend.armBackstop(name, at), 'COMMAND_FAILED');
      }
      assert.equal(env.exec.calls.length, calls, 'nothing ran');
      assert.deepEqual(env.model.tasks, []);
    });
  });

  describe('disarm', () => {
    it('removes the task; a missing task or account is fine, and tasks that are not ours stay', async () => {
      const env = windowsEnv();
      const name = newName();
      await enabledAccount(env, name);
      env.model.tasks.push({ path: '\\', name: backstopTaskName(name), userId: 'SYSTEM' }); // same name, another folder
      await env.backend.armBackstop(name, inAnHour());
      await env.backend.disarmBackstop(name);
      assert.deepEqual(taskOf(env, name), []);
      await env.backend.disarmBackstop(name);
      await env.backend.disarmBackstop(newName()); // never armed
      assert.deepEqual(env.model.tasks.map((t) => `${t.path}${t.name}`), [`\\${backstopTaskName(name)}`]);
      // The account is gone (removal deleted it) and its task is still there: disarm still works.
      const gone = newName();
      await enabledAccount(env, gone);
      await env.backend.armBackstop(gone, inAnHour());
      await env.backend.delete(gone);
      await env.backend.disarmBackstop(gone);
      assert.deepEqual(taskOf(env, gone), []);
      await rejectsWith(env.backend.disarmBackstop('a$(calc)'), 'INVALID_NAME');
      await verifyRecording(env.exec);
    });
  });

  describe('the helper', () => {
    it('is constant text beside the password helper: no value in it, it parses, its parameters are validated', async () => {
      const texts: string[] = [];
      for (const grant of ['g1', "g'$(calc)"]) {
        const env = windowsEnv();
        const name = newName();
        const info = await enabledAccount(env, name, grant);
        await env.backend.armBackstop(name, inAnHour());
        const text = env.model.files.get(backstopPath(env).toLowerCase());
        assert.equal(text, backstopHelperText());
        assert.ok(!text.includes(name) && !text.includes(info.id) && !text.includes(grant), 'no value in the helper');
        assert.ok(env.model.files.has(env.backend.helperPath.toLowerCase()), 'beside the password helper');
        assert.equal(path.win32.dirname(backstopPath(env)), path.win32.dirname(env.backend.helperPath));
        texts.push(text);
        await verifyRecording(env.exec);
      }
      assert.equal(texts[0], texts[1]);
      assert.notEqual(BACKSTOP_FILE, HELPER_FILE);
      const tree = await parsePowerShell(backstopHelperText());
      assert.ok(tree.ok, tree.errors.join('; '));
      assert.ok(tree.literals.every((l) => l.kind === 'verbatim'), 'no expandable string in the helper');
      const param = BACKSTOP_HELPER_LINES.find((l) => l.startsWith('param('))!;
      assert.ok(param.includes("[ValidatePattern('(?-i)^[a-z][a-z0-9_-]{0,19}$')][string]$Name"), param);
      assert.ok(param.includes("[ValidatePattern('(?-i)^S-1-5-21-\\d{1,10}-\\d{1,10}-\\d{1,10}-\\d{1,10}$')][string]$Sid"), param);
    });

    it('is checked by SHA-256 before the task is registered: a changed helper registers nothing and is reinstalled next time', async () => {
      const env = windowsEnv();
      const name = newName();
      await enabledAccount(env, name);
      const first = inAnHour();
      await env.backend.armBackstop(name, first);
      env.model.files.set(backstopPath(env).toLowerCase(), `${backstopHelperText()}Remove-Item C:\\ -Recurse\r\n`);
      await assert.rejects(env.backend.armBackstop(name, new Date(Date.now() + 7_200_000)), (e: unknown) => e instanceof AccountError && e.code === 'COMMAND_FAILED' && /helper/.test(e.message));
      assert.equal(boundaryInstant(env.model, taskOf(env, name)[0]!.triggers![0]!.start), ceilSecond(first), 'not registered again');
      await env.backend.armBackstop(name, inAnHour());
      assert.equal(env.model.files.get(backstopPath(env).toLowerCase()), backstopHelperText(), 'reinstalled');

      const fresh = windowsEnv();
      const other = newName();
      await enabledAccount(fresh, other);
      fresh.exec.replyJson('installHelper', { ok: true, path: backstopPath(fresh), sha256: '00'.repeat(32) });
      await rejectsWith(fresh.backend.armBackstop(other, inAnHour()), 'COMMAND_FAILED');
      assert.equal(fresh.exec.sessionCalls('armBackstop').length, 0, 'no task without a trusted helper');
    });

    it('run by the task, with the agent gone, disables, expires and logs off the account it was armed for', async () => {
      const env = windowsEnv();
      const name = newName();
      const info = await enabledAccount(env, name);
      await env.backend.armBackstop(name, inAnHour());
      const console = env.model.spawn(info.id, { console: true });
      env.model.startProcess(info.id, undefined, 1); // outside any session, restarted once
      const calls = env.exec.calls.length;
      const before = Date.now();
      const run = await env.model.runTask(BACKSTOP_TASK_PATH, backstopTaskName(name));
      assert.equal(env.exec.calls.length, calls, 'the agent did nothing');
      assert.deepEqual({ ran: run.ran, exitCode: run.exitCode, acted: run.result?.acted }, { ran: true, exitCode: 0, acted: true }, run.why);
      const u = env.model.find(name)!;
      assert.equal(u.enabled, false);
      assert.ok(u.expiresMs !== undefined && u.expiresMs >= before && u.expiresMs <= Date.now(), 'AccountExpires = now');
      assert.deepEqual(env.model.sessionsOf(name), []);
      assert.deepEqual(env.model.processesOf(info.id), []);
      assert.equal(console.alive(), false);
      // Run again (StartWhenAvailable after a wake, a manual run): harmless.
      assert.equal((await env.model.runTask(BACKSTOP_TASK_PATH, backstopTaskName(name))).exitCode, 0);
    });

    it('touches nothing when the name belongs to another account by now, even one of ours, or the tag is gone', async () => {
      const env = windowsEnv();
      const name = newName();
      await enabledAccount(env, name, 'g-old');
      await env.backend.armBackstop(name, inAnHour());
      await env.backend.delete(name);
      const again = await enabledAccount(env, name, 'g-new'); // the name again, tagged by us, another SID
      env.model.spawn(again.id);
      const run = await env.model.runTask(BACKSTOP_TASK_PATH, backstopTaskName(name));
      assert.deepEqual({ exitCode: run.exitCode, acted: run.result?.acted }, { exitCode: 0, acted: false }, run.why);
      assert.equal(env.model.find(name)?.enabled, true);
      assert.equal(env.model.sessionsOf(name).length, 1);

      const untagged = newName();
      await enabledAccount(env, untagged);
      await env.backend.armBackstop(untagged, inAnHour());
      env.model.find(untagged)!.description = 'taken over by the site'; // no longer ours
      const r = await env.model.runTask(BACKSTOP_TASK_PATH, backstopTaskName(untagged));
      assert.equal(r.result?.acted, false);
      assert.equal(env.model.find(untagged)?.enabled, true);
    });

    it('goes on after a failing step and reports the failure through its exit code', async () => {
      const env = windowsEnv();
      const name = newName();
      const info = await enabledAccount(env, name);
      await env.backend.armBackstop(name, inAnHour());
      const { session } = env.model.spawn(info.id, { refuses: true });
      const run = await env.model.runTask(BACKSTOP_TASK_PATH, backstopTaskName(name));
      assert.equal(run.exitCode, 1, 'Last Run Result shows it');
      assert.equal(env.model.tasks.find((t) => t.name === backstopTaskName(name))?.lastResult, 1);
      assert.equal(env.model.find(name)?.enabled, false, 'disabled all the same');
      assert.ok(env.model.find(name)!.expiresMs! <= Date.now());
      assert.deepEqual(env.model.sessionsOf(name).map((s) => s.id), [session]);
    });
  });

  describe('the task action', () => {
    it('starts 64-bit Windows PowerShell by its System32 path, also when the agent is a 32-bit process', () => {
      // The task is started by the 64-bit Task Scheduler service, where Sysnative does not exist.
      assert.equal(backstopExecutable({ SystemRoot: 'D:\\WIN', PROCESSOR_ARCHITEW6432: 'AMD64' }), 'D:\\WIN\\System32\\WindowsPowerShell\\v1.0\\powershell.exe');
      assert.equal(backstopExecutable({}), TASK_POWERSHELL);
    });

    it('quotes the helper path in the argument string, and refuses what Task Scheduler would change', () => {
      const file = 'C:\\Program Files\\jit-access\\ps\\jit-backstop.ps1';
      const sid = 'S-1-5-21-1-2-3-1001';
      const args = backstopArguments(file, 'jtabc', sid);
      assert.equal(args, `-NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -File "${file}" -Name jtabc -Sid ${sid}`);
      assert.deepEqual(splitCommandLine(args), helperArgv(file, ['-Name', 'jtabc', '-Sid', sid]));
      for (const bad of ['C:\\a"b\\x.ps1', 'C:\\%TEMP%\\x.ps1', 'C:\\dir\\']) assert.throws(() => backstopArguments(bad, 'jtabc', sid));
      assert.throws(() => backstopArguments(file, 'jtabc', 'S-1-5-18'));
    });
  });

  describe('uninstall', () => {
    it('dropMarker unregisters every \\jit-access\\ task, removes the folder and both helpers, once no account is left', async () => {
      const env = windowsEnv();
      const name = newName();
      await enabledAccount(env, name);
      await env.backend.armBackstop(name, inAnHour());
      env.model.tasks.push({ path: BACKSTOP_TASK_PATH, name: 'backstop-jtold', userId: 'SYSTEM' }, { path: '\\', name: 'site-task', userId: 'SYSTEM' });
      await assert.rejects(env.backend.dropMarker(), /still has members/);
      assert.equal(env.model.tasks.length, 3, 'nothing removed while an account is left');
      await env.backend.delete(name);
      await env.backend.dropMarker();
      assert.deepEqual(env.model.tasks.map((t) => `${t.path}${t.name}`), ['\\site-task']);
      assert.equal(env.model.taskFolders.has(BACKSTOP_TASK_PATH), false);
      assert.equal(env.model.files.has(backstopPath(env).toLowerCase()), false);
      assert.equal(env.model.files.has(env.backend.helperPath.toLowerCase()), false);
      await env.backend.dropMarker();
      await verifyRecording(env.exec);
    });
  });
});
