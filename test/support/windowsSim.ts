/**
 * A simulated Windows for the Windows account backend's tests (agent/os/windows*.test.ts):
 * a RECORDING executor (windowsSimExec.ts) keeps the script, argv and stdin of each call apart and answers from a
 * small in-memory model of a Windows machine (users, the three well-known groups, sessions,
 * processes, profiles, scheduled tasks, files). The Task Scheduler part (the backstop's tasks and
 * running them) is in windowsSimTasks.ts.
 *
 * How the model answers. It cannot run PowerShell. Each operation is answered the way the
 * documentation says Windows would answer our script, but every CHANGE to the machine is
 * made only if the script really contains the code that makes it: the script is parsed with
 * the PowerShell grammar (tree-sitter-powershell) and the model looks for the command,
 * parameter, method, type or literal responsible (`ScriptTokens`), never in comments. So a
 * script that forgets `Set-LocalUser -AccountExpires` leaves the model's account without
 * expiry, and the test that reads the model fails. What this cannot prove: that Windows
 * behaves as the model does.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Language, Parser, type Node } from 'web-tree-sitter';
import { parsePowerShell, readVerbatimString, type PsParseResult } from './psParse.ts';
import { GROUP_SIDS, MARKER, OP_BODY, type Op } from '../../agent/os/windows-scripts.ts';
import { answerTaskOp, runBackstopHelper, runTask, type TaskRun } from './windowsSimTasks.ts';
import { answerRestoreOp, runRestoreHelper } from './windowsSimRestore.ts';
import { BACKSTOP_FILE } from '../../agent/os/windows-backstop.ts';
import { RESTORE_FILE } from '../../agent/os/windows-restore.ts';
import { answerElevationOp } from './windowsSimElevation.ts';

export const HELPER_DIR = 'C:\\Program Files\\jit-access\\ps';
export const COMPUTER = 'WKS01';
export const PROFILES_DIR = 'C:\\Users';
const ALL_GROUP_SIDS = Object.values(GROUP_SIDS);

/** userFlags bits (lmaccess.h). */
export const UF_ACCOUNTDISABLE = 0x2;
export const UF_PASSWD_NOTREQD = 0x20;
export const UF_NORMAL_ACCOUNT = 0x200;

// ---------------------------------------------------------------------------------------------
// Reading our own scripts back
// ---------------------------------------------------------------------------------------------

export type Params = Record<string, string | number | string[]>;

/** Decodes one single-quoted literal with PowerShell's rules; fails unless `text` is exactly one. */
function decodeLiteral(text: string): string {
  const r = readVerbatimString(text, 0);
  assert.ok(r && r.end === text.length, `not exactly one single-quoted literal: ${text}`);
  return r.value;
}

/** Splits a session script into operation, prelude values and the constant rest. */
export function splitScript(script: string): { op: Op; params: Params; rest: string[] } {
  const lines = script.split('\n');
  assert.equal(lines[0], '& {');
  const header = /^# jit-access op=(\w+)$/.exec(lines[1] ?? '');
  assert.ok(header && header[1]! in OP_BODY, `operation header: ${lines[1]}`);
  const params: Params = {};
  let i = 2;
  for (; i < lines.length && lines[i] !== "$ErrorActionPreference = 'Stop'"; i++) {
    const m = /^\$([A-Z][A-Za-z]*) = (.*)$/.exec(lines[i]!);
    assert.ok(m, `prelude line: ${lines[i]}`);
    const [, key, value] = m as unknown as [string, string, string];
    if (value === '@(') {
      const list: string[] = [];
      for (i++; lines[i] !== ')'; i++) list.push(decodeLiteral(lines[i]!));
      params[key] = list;
    } else if (/^-?\d+$/.test(value)) {
      params[key] = Number(value);
    } else {
      params[key] = decodeLiteral(value);
    }
  }
  return { op: header[1] as Op, params, rest: lines.slice(i) };
}

const parsed = new Map<string, PsParseResult>();
export async function parseCached(src: string): Promise<PsParseResult> {
  let r = parsed.get(src);
  if (!r) parsed.set(src, (r = await parsePowerShell(src)));
  return r;
}

let tokenParser: Promise<Parser> | undefined;

/**
 * What a script really does, as far as the grammar tells: the names of the commands it runs,
 * the parameters it passes, the methods and types it uses, bare words (`/F`, `Terminate`) and
 * the values of its single-quoted literals. Comments are not code, so they count for nothing.
 */
export class ScriptTokens {
  private constructor(
    private readonly words: Set<string>,
    private readonly literals: string[],
    /** Every assignment: its left side (lower case, no spaces) and the text of its value. */
    private readonly assignments: { left: string; value: string }[],
  ) {}

  static async of(script: string): Promise<ScriptTokens> {
    tokenParser ??= (async () => {
      await Parser.init();
      const p = new Parser();
      p.setLanguage(await Language.load(createRequire(import.meta.url).resolve('tree-sitter-powershell/tree-sitter-powershell.wasm')));
      return p;
    })();
    const tree = (await tokenParser).parse(script);
    assert.ok(tree, 'no parse tree');
    const words = new Set<string>();
    const literals: string[] = [];
    const assignments: { left: string; value: string }[] = [];
    const walk = (n: Node): void => {
      if (n.type === 'assignment_expression') {
        const [left, , value] = n.children;
        if (left && value) assignments.push({ left: left.text.replace(/\s+/g, '').toLowerCase(), value: value.text });
      }
      if (['command_name', 'command_parameter', 'member_name', 'type_name', 'generic_token'].includes(n.type)) words.add(n.text.toLowerCase());
      if (n.type === 'verbatim_string_characters') {
        const v = readVerbatimString(n.text, 0)?.value ?? '';
        literals.push(v);
        words.add(v.toLowerCase());
      }
      for (const c of n.children) if (c) walk(c);
    };
    walk(tree.rootNode);
    tree.delete();
    return new ScriptTokens(words, literals, assignments);
  }

  /** Whether the code assigns to `left` (e.g. `$u`, `$trigger.StartBoundary`) a value matching `value`. */
  assigns(left: string, value: RegExp): boolean {
    const l = left.toLowerCase();
    return this.assignments.some((a) => a.left === l && value.test(a.value));
  }

  /** A command, parameter (with its dash), method, type, bare word or whole literal value. */
  has(...tokens: string[]): boolean {
    return tokens.every((t) => this.words.has(t.toLowerCase()));
  }

  /** Whether some single-quoted literal contains `text` (e.g. a line of embedded C#). */
  literalIncludes(text: string): boolean {
    return this.literals.some((l) => l.includes(text));
  }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

export interface MUser {
  name: string;
  sid: string;
  enabled: boolean;
  description: string;
  expiresMs?: number;
  password?: string;
  userFlags: number;
  /** "User must change password at next logon". */
  passwordExpired: boolean;
}

export interface MSession {
  id: number;
  user: string;
  /** WTSLogoffSession fails for it (e.g. access denied). */
  refuses: boolean;
  /** The console session, which logoff.exe cannot end (notes §1.4 [W5]). */
  console: boolean;
}

export interface MProcess {
  sid: string;
  session?: number;
  /** How many times something starts it again after it was terminated. */
  respawn: number;
}

export interface MProfile {
  path: string;
  /** The hive is loaded; it unloads `unloadIn` checks after the account's last process ended. */
  loaded: boolean;
  unloadIn: number;
  /** The Win32_UserProfile instance, the folder and the ProfileList\<SID> key. */
  cim: boolean;
  folder: boolean;
  key: boolean;
  /** Folders inside that deny SYSTEM (winget-cli#3365): no deletion until their ACL is reset. */
  deniedDirs: number;
  /** Purge runs in which taking ownership still fails (a file held open by another process). */
  aclResetFailsFor: number;
}

export interface MTask {
  path: string;
  name: string;
  /** Principal.UserId as Get-ScheduledTask shows it (a name, e.g. SYSTEM, or a SID). */
  userId: string;
  logonType?: string;
  runLevel?: string;
  triggers?: { type: string; start: string; end: string; enabled: boolean }[];
  actions?: { type: string; execute: string; arguments: string }[];
  settings?: { startWhenAvailable: boolean; executionTimeLimit: string; disallowStartIfOnBatteries: boolean; stopIfGoingOnBatteries: boolean; enabled: boolean };
  /** Exit code of its last run (Last Run Result). */
  lastResult?: number;
}

export type Json = Record<string, unknown>;
type LogoffPassJson = Json & { sessionsLeft: { id: number; error: number }[]; processesLeft: number };
const fail = (code: string, message: string): Json => ({ ok: false, code, message });
const accessDenied = (message: string): Json => ({
  ok: false,
  error: { type: 'Microsoft.Management.Infrastructure.CimException', fqid: 'HRESULT 0x80070005,Microsoft.Management.Infrastructure.CimCmdlets.RemoveCimInstanceCommand', category: 'PermissionDenied', message, hresult: 0x80070005 | 0, native: 'AccessDenied' },
});

/**
 * Deliberately small: names compare case-insensitively, group membership is by SID, a profile
 * stays loaded for a moment after its user's last process ends.
 */
export class WindowsModel {
  users: MUser[] = [];
  members = new Map<string, Set<string>>(ALL_GROUP_SIDS.map((g) => [g, new Set<string>()]));
  processes = new Map<number, MProcess>();
  sessions: MSession[] = [];
  profiles = new Map<string, MProfile>();
  tasks: MTask[] = [];
  /** Task Scheduler folders ('\\' is the root). */
  taskFolders = new Set<string>(['\\']);
  /** The machine's time zone, minutes east of UTC: how Task Scheduler reads a time without offset. */
  timeZoneMinutes = 0;
  /** How Windows hands back a trigger boundary written in UTC (windowsSimTasks.ts). */
  boundaryStyle: 'as-written' | 'local-offset' | 'local-naive' = 'as-written';
  files = new Map<string, string>();
  /** Domain accounts the machine can translate (elevation of DOMAIN\\user), by SID. */
  domainAccounts = new Map<string, { domain: string; name: string }>();
  /** quser.exe and logoff.exe exist (not on Home editions). */
  hasQuser = true;
  /** Set-LocalUser -AccountExpires silently does not take (to test the read-back). */
  ignoreExpiry = false;
  /** The ADSI userFlags write silently does not take (to test the read-back). */
  ignoreAdsi = false;
  private rid = 1000;
  private pid = 4000;
  private sessionId = 1;

  find(name: string): MUser | undefined {
    return this.users.find((u) => u.name.toLowerCase() === name.toLowerCase());
  }

  addUser(name: string, description: string): MUser {
    const u: MUser = {
      name,
      sid: `S-1-5-21-1004336348-1177238915-682003330-${++this.rid}`,
      enabled: false,
      description,
      // New-LocalUser sets UF_PASSWD_NOTREQD (PowerShell#11965); the worst case also has
      // "must change password at next logon".
      userFlags: UF_NORMAL_ACCOUNT | UF_PASSWD_NOTREQD | UF_ACCOUNTDISABLE,
      passwordExpired: true,
    };
    this.users.push(u);
    return u;
  }

  /** A logon: a session, a process in it and a loaded profile. */
  spawn(sid: string, opts: { refuses?: boolean; console?: boolean; respawn?: number; deniedDirs?: number } = {}): { alive(): boolean; kill(): void; session: number } {
    const u = this.users.find((x) => x.sid === sid);
    assert.ok(u, `no account with SID ${sid}`);
    const session = ++this.sessionId;
    this.sessions.push({ id: session, user: u.name, refuses: !!opts.refuses, console: !!opts.console });
    const pid = this.startProcess(sid, session, opts.respawn ?? 0);
    const prev = this.profiles.get(sid);
    this.profiles.set(sid, {
      path: prev?.path ?? path.win32.join(PROFILES_DIR, u.name),
      loaded: true,
      unloadIn: 1,
      cim: true,
      folder: true,
      key: true,
      deniedDirs: (prev?.deniedDirs ?? 0) + (opts.deniedDirs ?? 0),
      aclResetFailsFor: prev?.aclResetFailsFor ?? 0,
    });
    return { alive: () => this.processes.has(pid), kill: () => void this.processes.delete(pid), session };
  }

  startProcess(sid: string, session: number | undefined, respawn = 0): number {
    const pid = ++this.pid;
    this.processes.set(pid, { sid, session, respawn });
    return pid;
  }

  processesOf(sid: string): number[] {
    return [...this.processes].filter(([, p]) => p.sid === sid).map(([pid]) => pid);
  }

  sessionsOf(name: string): MSession[] {
    return this.sessions.filter((s) => s.user.toLowerCase() === name.toLowerCase());
  }

  info(u: MUser): Json {
    return {
      name: u.name,
      sid: u.sid,
      enabled: u.enabled,
      description: u.description,
      groups: Object.entries(GROUP_SIDS).filter(([, g]) => this.members.get(g)!.has(u.sid)).map(([name]) => name),
    };
  }

  private managed(name: string): MUser | Json {
    const u = this.find(name);
    if (!u) return fail('NOT_FOUND', 'no such account');
    if (!u.description.startsWith(MARKER)) return fail('NOT_MANAGED', 'the account lacks the jit-access marker');
    return u;
  }

  private setGroup(u: MUser, want: string): void {
    for (const g of ALL_GROUP_SIDS) {
      if (g === want) this.members.get(g)!.add(u.sid);
      else this.members.get(g)!.delete(u.sid);
    }
  }

  /** Whether the profile of `sid` is loaded now; it unloads a little after the last process ended. */
  private profileLoaded(sid: string, prof: MProfile): boolean {
    if (!prof.loaded) return false;
    const u = this.users.find((x) => x.sid === sid);
    const inUse = (u !== undefined && this.sessionsOf(u.name).length > 0) || this.processesOf(sid).length > 0;
    if (inUse || prof.unloadIn-- > 0) return true;
    prof.loaded = false;
    return false;
  }

  private terminate(pid: number): void {
    const p = this.processes.get(pid);
    if (!p) return;
    this.processes.delete(pid);
    if (p.respawn > 0) this.startProcess(p.sid, undefined, p.respawn - 1);
  }

  private endSession(s: MSession): void {
    this.sessions = this.sessions.filter((x) => x !== s);
    for (const [pid, p] of [...this.processes]) if (p.session === s.id) this.terminate(pid);
  }

  answer(op: Op, p: Params, t: ScriptTokens): Json {
    const name = p.Name as string;
    const guarded = (fn: (u: MUser) => Json): Json => {
      const u = this.managed(name);
      return 'sid' in u ? fn(u as MUser) : (u as Json);
    };
    switch (op) {
      case 'lookup': {
        const u = this.find(name);
        return { ok: true, user: u ? this.info(u) : null };
      }
      case 'list':
        return { ok: true, users: this.users.filter((u) => u.description.startsWith(MARKER)).map((u) => this.info(u)) };
      case 'create': {
        if (this.find(name)) return fail('ALREADY_EXISTS', 'an account of that name exists');
        const description = p.Description as string;
        // Documented limits of New-LocalUser: a breach is a bug in the backend.
        assert.ok(name.length <= 20 && description.length <= 48, 'New-LocalUser limits');
        assert.ok(ALL_GROUP_SIDS.includes(p.GroupSid as string), 'a wizard group SID');
        const u = this.addUser(name, description);
        u.expiresMs = p.ExpiresMs as number;
        this.setGroup(u, p.GroupSid as string);
        return { ok: true, user: this.info(u) };
      }
      case 'setGroups':
        return guarded((u) => (this.setGroup(u, p.GroupSid as string), { ok: true }));
      case 'enable':
        return guarded((u) => {
          if (t.has('Set-LocalUser', '-AccountExpires') && !this.ignoreExpiry) u.expiresMs = p.ExpiresMs as number;
          if (t.has('Enable-LocalUser')) u.enabled = true;
          return { ok: true, enabled: u.enabled };
        });
      case 'disable': {
        const u = this.find(name);
        if (!u) return { ok: true, exists: false };
        if (!u.description.startsWith(MARKER)) return fail('NOT_MANAGED', 'the account lacks the jit-access marker');
        const now = Date.now();
        if (t.has('Disable-LocalUser')) u.enabled = false;
        if (t.has('Set-LocalUser', '-AccountExpires') && !this.ignoreExpiry) u.expiresMs = now;
        return { ok: true, exists: true, enabled: u.enabled, expiresMs: u.expiresMs ?? null, nowMs: now };
      }
      case 'logoff':
        return guarded((u) => this.logoffPass(u, t));
      case 'delete': {
        const u = this.find(name);
        if (!u) return { ok: true, deleted: false };
        if (!u.description.startsWith(MARKER)) return fail('NOT_MANAGED', 'the account lacks the jit-access marker');
        const prof = this.profiles.get(u.sid);
        if (prof?.cim && t.has('Remove-CimInstance')) {
          // A delete that takes the profile first (as before purge existed) stops at its failures.
          if (this.profileLoaded(u.sid, prof)) return fail('LOGGED_IN', 'the profile is loaded');
          if (prof.deniedDirs > 0) return accessDenied('Access is denied.');
          this.profiles.delete(u.sid);
        }
        if (!t.has('Remove-LocalUser')) return { ok: true, deleted: false };
        this.users = this.users.filter((x) => x !== u);
        // SAM drops a deleted account from the local groups (📄).
        for (const set of this.members.values()) set.delete(u.sid);
        return { ok: true, deleted: true };
      }
      case 'purge':
        return this.purge(p.Name as string, p.Sid as string, t);
      case 'installHelper': {
        const file = path.win32.join(p.Dir as string, p.File as string);
        const text = `${(p.Lines as string[]).join('\r\n')}\r\n`;
        this.files.set(file.toLowerCase(), text);
        return { ok: true, path: file, sha256: createHash('sha256').update(text).digest('hex').toUpperCase() };
      }
      case 'dropHelper': {
        const file = path.win32.join(p.Dir as string, p.File as string).toLowerCase();
        const existed = this.files.delete(file);
        return { ok: true, removed: existed };
      }
      case 'armBackstop':
      case 'disarmBackstop':
      case 'dropBackstops':
        return answerTaskOp(this, op, p, t);
      case 'armRestore':
      case 'disarmRestore':
      case 'dropRestores':
        return answerRestoreOp(this, op, p, t);
      default:
        return answerElevationOp(this, op, p, t);
    }
  }

  /** Runs a registered task as Task Scheduler would at its trigger (windowsSimTasks.ts). */
  runTask(taskPath: string, name: string): Promise<TaskRun> {
    return runTask(this, taskPath, name, (script) => ScriptTokens.of(script), { [BACKSTOP_FILE]: runBackstopHelper, [RESTORE_FILE]: runRestoreHelper });
  }

  /** One pass of the logoff script: sessions, then processes, then what is left. */
  logoffPass(u: MUser, t: ScriptTokens): LogoffPassJson {
    let sessions = 0;
    let sessionsFailed = 0;
    const failedIds = new Map<number, number>();
    const wts = t.has('JitAccess.Wts') && t.literalIncludes('WTSLogoffSession') && t.literalIncludes('WTSEnumerateSessions');
    const quser = this.hasQuser && t.has('System32\\quser.exe') && t.has('System32\\logoff.exe');
    for (const s of this.sessionsOf(u.name)) {
      if (wts) {
        if (s.refuses) failedIds.set(s.id, 5);
        else (this.endSession(s), sessions++);
      } else if (quser) {
        if (s.console) sessionsFailed++;
        else (this.endSession(s), sessions++);
      }
    }
    let processes = 0;
    if (t.has('GetOwnerSid') && t.has('Terminate')) {
      for (const pid of this.processesOf(u.sid)) (this.terminate(pid), processes++);
    }
    const sessionsLeft = this.sessionsOf(u.name).map((s) => ({ id: s.id, error: failedIds.get(s.id) ?? 0 }));
    // Both result shapes: the one-pass script of before (sessionsFailed, failed) and the new one.
    return { ok: true, sessions, sessionsFailed, processes, failed: 0, sessionsLeft, processesLeft: this.processesOf(u.sid).length };
  }

  private purge(name: string, sid: string, t: ScriptTokens): Json {
    if (this.users.some((u) => u.sid === sid)) return { ok: true, skipped: true };
    const prof = this.profiles.get(sid);
    const errors: string[] = [];
    let denied = false;
    if (prof && (prof.cim || prof.folder || prof.key)) {
      if (prof.cim && this.profileLoaded(sid, prof)) return fail('LOGGED_IN', 'the profile is loaded');
      if (t.has('System32\\takeown.exe') && t.has('/A') && t.has('SetAccessRuleProtection')) {
        if (prof.aclResetFailsFor > 0) (prof.aclResetFailsFor--, errors.push('takeown failed'));
        else prof.deniedDirs = 0;
      }
      if (prof.cim && t.has('Remove-CimInstance')) {
        if (prof.deniedDirs > 0) {
          // DeleteProfile removed the registry key (and with it the instance), not the folder.
          prof.cim = false;
          prof.key = false;
          denied = true;
          errors.push('Access is denied.');
        } else {
          prof.cim = prof.folder = prof.key = false;
        }
      }
      if (!prof.cim && prof.folder && t.has('System.IO.Directory', 'Delete') && prof.deniedDirs === 0) prof.folder = false;
      if (!prof.cim && prof.key && t.has('Remove-Item') && t.literalIncludes('CurrentVersion\\ProfileList')) prof.key = false;
      if (!prof.cim && !prof.folder && !prof.key) this.profiles.delete(sid);
    }
    let tasksRemoved = 0;
    const ids = [sid, ...(this.find(name) ? [] : [name, `${COMPUTER}\\${name}`])].map((x) => x.toLowerCase());
    if (t.has('Get-ScheduledTask', 'Unregister-ScheduledTask')) {
      const before = this.tasks.length;
      this.tasks = this.tasks.filter((task) => !ids.includes(task.userId.toLowerCase()));
      tasksRemoved = before - this.tasks.length;
    }
    const left: string[] = [];
    const still = this.profiles.get(sid);
    if (still?.cim) left.push('profile');
    if (still?.folder) left.push(`folder ${still.path}`);
    if (still?.key) left.push('ProfileList key');
    const tasksLeft = this.tasks.filter((task) => ids.includes(task.userId.toLowerCase())).length;
    if (tasksLeft) left.push(`${tasksLeft} scheduled task(s)`);
    if (left.length) return fail(denied ? 'ACCESS_DENIED' : 'COMMAND_FAILED', `left: ${left.join('; ')}${errors.length ? ` (${errors.join('; ')})` : ''}`);
    return { ok: true, skipped: false, tasks: tasksRemoved };
  }

  /** The password helper, run as a file with the password on stdin. */
  runHelper(args: string[], stdin: string, t: ScriptTokens): Json {
    const name = args[1]!;
    const pw = stdin.split(/\r|\n/)[0] ?? '';
    if (!pw) return fail('COMMAND_FAILED', 'no password on standard input');
    const u = this.managed(name);
    if (!('sid' in u)) return u as Json;
    const user = u as MUser;
    user.password = pw;
    if (t.has('ADSI', 'Put', 'SetInfo') && t.literalIncludes('UserFlags') && !this.ignoreAdsi) {
      user.userFlags &= ~UF_PASSWD_NOTREQD;
      if (t.literalIncludes('PasswordExpired')) user.passwordExpired = false;
    }
    if (t.has('RefreshCache') && ((user.userFlags & UF_PASSWD_NOTREQD) !== 0 || user.passwordExpired)) {
      return fail('COMMAND_FAILED', 'UF_PASSWD_NOTREQD or PasswordExpired is still set');
    }
    return { ok: true };
  }
}
