/**
 * Folders only SYSTEM and Administrators can change (Windows): read a folder's owner and ACL
 * (and its children's) through Windows PowerShell 5.1, decide whether a folder that is already
 * there can be trusted, create one protected from the start, lock it with icacls and read the
 * result back. Pure functions: install.ts runs the commands.
 *
 * WHY. %ProgramData% lets every user create folders (BUILTIN\Users: create folders / append
 * data, inherited), so a standard user can make %ProgramData%\jit-agent before the first
 * install and keep rights on it: as its owner (owners may always rewrite the DACL) or through
 * an ACE of their own that `icacls /inheritance:r /grant:r` leaves in place. They could then
 * swap a file of the SYSTEM service, or plant a state file enrolling the machine with their
 * own server. So a folder that is already there must be owned by SYSTEM or Administrators and
 * writable by nobody else, children included, or install stops before changing anything.
 *
 * Values reach PowerShell only as single-quoted literals (psQuote); the script travels as
 * -EncodedCommand (UTF-16LE, base64), so no command-line quoting rule can change it. Identities
 * are compared by SID: account names are localized.
 * ⚠️ Not run on Windows (none here): the scripts are checked by the PowerShell grammar and the
 * JSON they answer is modelled in the tests from the documented Get-Acl / FileSystemAccessRule API.
 */
import { z } from 'zod';
import { psQuote } from '../os/windows-scripts.ts';
import { POWERSHELL_ARGS, system32, windowsPowerShellExe } from './windows.ts';

export const SYSTEM_SID = 'S-1-5-18';
export const ADMINISTRATORS_SID = 'S-1-5-32-544';
const TRUSTED = new Set([SYSTEM_SID, ADMINISTRATORS_SID]);

/** FileSystemRights that change a folder or what is in it (write, append, delete, DACL, owner, generic write/all). */
const WRITE_RIGHTS = 0x2 | 0x4 | 0x10 | 0x40 | 0x100 | 0x10000 | 0x40000 | 0x80000 | 0x10000000 | 0x40000000;
const FULL_CONTROL = 0x1f01ff;
/** InheritanceFlags ContainerInherit | ObjectInherit; PropagationFlags InheritOnly. */
const CI_OI = 3;
const INHERIT_ONLY = 2;

const Rule = z.object({ sid: z.string(), rights: z.number(), allow: z.boolean(), inherited: z.boolean(), inherit: z.number(), propagate: z.number() });
const Item = z.object({
  path: z.string(),
  dir: z.boolean(),
  reparse: z.boolean(),
  owner: z.string(),
  protected: z.boolean(),
  // Why the union: Windows PowerShell 5.1's ConvertTo-Json may write a one-element array as the element.
  rules: z.union([z.array(Rule), Rule, z.null()]).transform((r) => (r === null ? [] : Array.isArray(r) ? r : [r])),
});
const Probe = z.object({
  exists: z.boolean(),
  top: Item.optional(),
  childCount: z.number().default(0),
  children: z.union([z.array(Item), Item, z.null()]).default([]).transform((c) => (c === null ? [] : Array.isArray(c) ? c : [c])),
});
export type AclProbe = z.output<typeof Probe>;
type ItemAcl = z.output<typeof Item>;

/** A script for `powershell.exe -EncodedCommand` (UTF-16LE, base64). */
export function encodePowerShell(script: string): string {
  return Buffer.from(script, 'utf16le').toString('base64');
}

function powerShellCommand(script: string, env: NodeJS.ProcessEnv): string[] {
  return [windowsPowerShellExe(env), ...POWERSHELL_ARGS, '-EncodedCommand', encodePowerShell(script)];
}

/** Answers one JSON line: the folder's owner, protection and rules, and every child's. */
export function aclProbeScript(dir: string): string {
  return [
    "$ErrorActionPreference = 'Stop'",
    '[Console]::OutputEncoding = [System.Text.Encoding]::UTF8',
    `$Path = ${psQuote(dir)}`,
    '$Sid = [System.Security.Principal.SecurityIdentifier]',
    'function Describe($Item) {',
    '  $Acl = Get-Acl -LiteralPath $Item.FullName',
    '  $Rules = @(foreach ($R in $Acl.GetAccessRules($true, $true, $Sid)) {',
    "    @{ sid = $R.IdentityReference.Value; rights = [int64]$R.FileSystemRights; allow = ($R.AccessControlType -eq 'Allow'); inherited = $R.IsInherited; inherit = [int]$R.InheritanceFlags; propagate = [int]$R.PropagationFlags }",
    '  })',
    '  $Reparse = [bool]($Item.Attributes -band [System.IO.FileAttributes]::ReparsePoint)',
    '  @{ path = $Item.FullName; dir = $Item.PSIsContainer; reparse = $Reparse; owner = $Acl.GetOwner($Sid).Value; protected = $Acl.AreAccessRulesProtected; rules = $Rules }',
    '}',
    'if (-not (Test-Path -LiteralPath $Path)) {',
    '  ConvertTo-Json -Compress -InputObject @{ exists = $false }',
    '  exit 0',
    '}',
    '$Top = Get-Item -LiteralPath $Path -Force',
    // Why not Get-ChildItem -Recurse: Windows PowerShell 5.1 follows junctions; links are reported, never entered.
    '$Reparse = [System.IO.FileAttributes]::ReparsePoint',
    'function Walk($Dir) {',
    '  foreach ($Child in @(Get-ChildItem -LiteralPath $Dir.FullName -Force)) {',
    '    Describe $Child',
    '    if ($Child.PSIsContainer -and -not ($Child.Attributes -band $Reparse)) { Walk $Child }',
    '  }',
    '}',
    '$Children = @()',
    'if ($Top.PSIsContainer -and -not ($Top.Attributes -band $Reparse)) { $Children = @(Walk $Top) }',
    'ConvertTo-Json -Compress -Depth 6 -InputObject @{ exists = $true; top = (Describe $Top); childCount = $Children.Count; children = $Children }',
    '',
  ].join('\r\n');
}

export function aclProbeCommand(dir: string, env: NodeJS.ProcessEnv): string[] {
  return powerShellCommand(aclProbeScript(dir), env);
}

export function parseAclProbe(stdout: string): AclProbe {
  const line = stdout.trim().split(/\r?\n/).at(-1) ?? '';
  return Probe.parse(JSON.parse(line));
}

const foreignWriter = (r: z.output<typeof Rule>): boolean =>
  r.allow && !TRUSTED.has(r.sid) && ((r.rights >>> 0) & WRITE_RIGHTS) !== 0 && (r.propagate & INHERIT_ONLY) === 0;

function itemProblems(item: ItemAcl): string[] {
  const out: string[] = [];
  if (item.reparse) out.push(`${item.path} is a link (reparse point)`);
  if (!TRUSTED.has(item.owner)) out.push(`${item.path} is owned by ${item.owner}, not SYSTEM or Administrators`);
  for (const r of item.rules.filter(foreignWriter)) out.push(`${item.path} can be changed by ${r.sid} (rights 0x${(r.rights >>> 0).toString(16)})`);
  return out;
}

/**
 * Why a folder that is already there can't be trusted: a link, another owner, or someone
 * other than SYSTEM and Administrators able to change it or anything in it. [] when trusted or missing.
 */
export function untrustedReasons(probe: AclProbe): string[] {
  if (!probe.exists || !probe.top) return [];
  const top = probe.top;
  const out = itemProblems(top);
  if (!top.dir) out.push(`${top.path} is not a folder`);
  for (const child of probe.children) out.push(...itemProblems(child));
  return out.slice(0, 10);
}

/** What differs from the locked state: owner SYSTEM/Administrators, protected, exactly two full-control ACEs, children inheriting only those. */
export function verifyProblems(probe: AclProbe): string[] {
  if (!probe.exists || !probe.top) return ['the folder is missing'];
  const top = probe.top;
  const out = itemProblems(top);
  if (!top.dir) out.push(`${top.path} is not a folder`);
  if (!top.protected) out.push(`${top.path} still inherits permissions from its parent`);
  const good = (sid: string) => (r: z.output<typeof Rule>) =>
    r.sid === sid && r.allow && !r.inherited && ((r.rights >>> 0) & FULL_CONTROL) === FULL_CONTROL && r.inherit === CI_OI && r.propagate === 0;
  if (top.rules.length !== 2 || !top.rules.some(good(SYSTEM_SID)) || !top.rules.some(good(ADMINISTRATORS_SID))) {
    out.push(`${top.path} has not exactly SYSTEM and Administrators full control: ${top.rules.map((r) => `${r.allow ? 'allow' : 'deny'} ${r.sid} 0x${(r.rights >>> 0).toString(16)}`).join(', ')}`);
  }
  for (const child of probe.children) {
    out.push(...itemProblems(child));
    for (const r of child.rules) if (!TRUSTED.has(r.sid)) out.push(`${child.path} has an entry for ${r.sid}`);
  }
  return out.slice(0, 10);
}

/** Every SID other than SYSTEM and Administrators with an entry on the folder itself. */
export function foreignSids(probe: AclProbe): string[] {
  return [...new Set((probe.top?.rules ?? []).map((r) => r.sid).filter((s) => !TRUSTED.has(s)))].sort();
}

/**
 * Creates the folder with its final security descriptor in the same call (owner Administrators,
 * protected, SYSTEM and Administrators full control), so it never exists with %ProgramData%'s
 * inherited "Users may create" entry.
 */
export function createProtectedDirScript(dir: string): string {
  return [
    "$ErrorActionPreference = 'Stop'",
    `$Path = ${psQuote(dir)}`,
    "if (Test-Path -LiteralPath $Path) { throw ('already there: ' + $Path) }",
    '$Security = New-Object System.Security.AccessControl.DirectorySecurity',
    "$Security.SetSecurityDescriptorSddlForm('O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)')",
    '[void][System.IO.Directory]::CreateDirectory($Path, $Security)',
    '',
  ].join('\r\n');
}

export function createProtectedDirCommand(dir: string, env: NodeJS.ProcessEnv): string[] {
  return powerShellCommand(createProtectedDirScript(dir), env);
}

/**
 * Locks a folder with %SystemRoot%\System32\icacls.exe: owner Administrators (children too),
 * inheritance cut and exactly SYSTEM and Administrators full control on the folder, the entries
 * of every other SID (`foreign`, from a probe) removed, and the children reset to inherit only that.
 */
export function lockFolderCommands(dir: string, env: NodeJS.ProcessEnv, o: { foreign: string[]; hasChildren: boolean }): string[][] {
  const icacls = system32(env, 'icacls.exe');
  return [
    [icacls, dir, '/setowner', `*${ADMINISTRATORS_SID}`, '/T', '/Q'],
    [icacls, dir, '/inheritance:r', '/grant:r', `*${SYSTEM_SID}:(OI)(CI)F`, `*${ADMINISTRATORS_SID}:(OI)(CI)F`, '/Q'],
    ...(o.foreign.length ? [[icacls, dir, '/remove', ...o.foreign.map((s) => `*${s}`), '/Q']] : []),
    ...(o.hasChildren ? [[icacls, `${dir}\\*`, '/reset', '/T', '/Q']] : []),
  ];
}
