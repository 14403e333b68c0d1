/**
 * The PowerShell texts behind the Windows account backend (agent/os/windows.ts). The two long
 * bodies live beside it: logoff in windows-logoff.ts, purge in windows-purge.ts; quoting in
 * windows-quote.ts.
 *
 * Every script is built the same way, so that one rule can be checked for all of them:
 *
 * ```
 * & {                               <- one statement: see TRANSPORT below
 * # jit-access op=<op>               <- lets a recording test executor tell the operations apart
 * $Name = 'jt0a1b2c3d4e'             <- the PRELUDE: the only lines that carry values, each one a
 * $ExpiresMs = 1767225600000            single-quoted literal from psQuote(), an integer from
 *                                       psInt(), or a list of such literals
 * $ErrorActionPreference = 'Stop'    <- COMMON: constant helper functions
 * ...
 * try {
 *   ...                              <- the operation's BODY: constant text, reads the prelude's variables
 * } catch { ... }                    <- every failure becomes a JSON error record on stdout
 * }
 * ```
 *
 * So no value is ever pasted into code: the body of an operation is the same text whatever
 * the name, grant id or path (windows.test.ts checks this), and values are only ever
 * single-quoted string literals, in which PowerShell expands nothing (`$(…)`, `$x` and
 * backticks are literal characters there).
 *
 * TRANSPORT. The long-lived session is `powershell.exe … -NoExit -Command -` (node-powershell,
 * shared notes §2), which reads stdin like an interactive prompt: a multi-line statement only
 * runs once an empty line follows it, and an empty line *inside* one submits it half-finished
 * [PowerShell#3223, MicrosoftDocs/PowerShell-Docs#11098]. Hence: the whole script is one
 * `& { … }` statement (which also keeps its variables and functions out of the session's
 * global scope), it contains no blank line, the executor appends one after it, and opening
 * braces stay on the line of their keyword (`} catch {`, `} else {`) [PowerShell#2068].
 * The session's stdin is decoded with the console code page, not UTF-8, so scripts are
 * printable ASCII only: a non-ASCII character could arrive as different characters, and in
 * code page 1252 the UTF-8 continuation bytes 0x91/0x92 read as U+2018/U+2019, which
 * PowerShell takes for single quotes (notes §2 [W12]). `assertTransportSafe` enforces both.
 *
 * OUTPUT. Scripts print exactly one line `jit-result <json>` with [Console]::Out (not the
 * success stream, which the host formats), the JSON made ASCII by escaping every other
 * character as \uXXXX, again because of the console code page.
 */
import { ARM_BODY, DISARM_BODY, DROP_BODY } from './windows-backstop.ts';
import { CATCH, COMMON, NOT_MANAGED_LINE } from './windows-common.ts';
import { ELEVATION_BODY, ELEVATION_PARAMS, type ElevationOp } from './windows-elevation-scripts.ts';
import { LOGOFF_BODY } from './windows-logoff.ts';
import { PURGE_BODY } from './windows-purge.ts';
import { assertTransportSafe, psInt, psQuote } from './windows-quote.ts';

export { assertTransportSafe, psInt, psQuote } from './windows-quote.ts';
export { GROUP_SIDS, MARKER, RESULT_PREFIX } from './windows-common.ts';

/** Documented maximum of a local account's `-Description` (notes §1 [W1]). */
export const DESCRIPTION_MAX = 48;
/** File name of the password helper inside the helper directory. */
export const HELPER_FILE = 'jit-set-password.ps1';

export type PsParam = string | number | readonly string[];
export type Op =
  | 'lookup'
  | 'list'
  | 'create'
  | 'setGroups'
  | 'enable'
  | 'disable'
  | 'logoff'
  | 'delete'
  | 'purge'
  | 'installHelper'
  | 'dropHelper'
  | 'armBackstop'
  | 'disarmBackstop'
  | 'dropBackstops'
  | ElevationOp;

/** One prelude assignment. Names are our own identifiers; values go through psQuote/psInt. */
function paramLines(name: string, value: PsParam): string[] {
  if (!/^[A-Z][A-Za-z]*$/.test(name)) throw new Error(`bad parameter name ${name}`);
  if (typeof value === 'number') return [`$${name} = ${psInt(value)}`];
  if (typeof value === 'string') return [`$${name} = ${psQuote(value)}`];
  // Why one literal a line: a list may be long, and inside @( ) a newline separates elements.
  return [`$${name} = @(`, ...value.map((v) => psQuote(v)), ')'];
}

/**
 * Each operation's body. Parameters (prelude variables) are listed in OP_PARAMS.
 * Why -Confirm:$false on removals: a cmdlet whose ConfirmImpact reaches $ConfirmPreference
 * would prompt, and a -NonInteractive session fails a prompt instead of answering it.
 */
export const OP_BODY: Record<Op, readonly string[]> = {
  ...ELEVATION_BODY,
  lookup: [
    '  $u = Find-JitUser $Name',
    '  if ($null -eq $u) { Out-JitResult ([ordered]@{ ok = $true; user = $null }); return }',
    '  Out-JitResult ([ordered]@{ ok = $true; user = (ConvertTo-JitInfo $u (Get-JitMembers)) })',
  ],
  list: [
    '  $members = Get-JitMembers',
    '  $users = @(Get-LocalUser | Where-Object { Test-JitManaged $_ } | ForEach-Object { ConvertTo-JitInfo $_ $members })',
    '  Out-JitResult ([ordered]@{ ok = $true; users = $users })',
  ],
  create: [
    "  if ($null -ne (Find-JitUser $Name)) { Out-JitResult ([ordered]@{ ok = $false; code = 'ALREADY_EXISTS'; message = 'an account of that name exists' }); return }",
    // Why UtcDateTime: LocalAccounts stores AccountExpires with DateTime.ToFileTime(), which
    // treats a DateTime of unspecified kind as local time.
    '  $expires = [DateTimeOffset]::FromUnixTimeMilliseconds($ExpiresMs).UtcDateTime',
    // Why -NoPassword: the password must not pass through this session (see windows.ts);
    // the helper sets it right after, and -Disabled keeps the account unusable meanwhile.
    '  $u = New-LocalUser -Name $Name -NoPassword -Disabled -Description $Description -AccountExpires $expires',
    // Why roll back here: an account without its group is half made; the marker is already
    // on it, so the agent could also delete it later, but this keeps create all-or-nothing.
    '  $sid = [string]$u.SID',
    '  try { Set-JitGroup $u $GroupSid } catch { $err = $_; try { Remove-LocalUser -SID $sid -Confirm:$false } catch { }; throw $err }',
    '  $u = Get-LocalUser -SID $sid',
    '  Out-JitResult ([ordered]@{ ok = $true; user = (ConvertTo-JitInfo $u (Get-JitMembers)) })',
  ],
  setGroups: [
    '  $u = Get-JitManagedUser $Name',
    '  if ($null -eq $u) { return }',
    '  Set-JitGroup $u $GroupSid',
    '  Out-JitResult ([ordered]@{ ok = $true })',
  ],
  enable: [
    '  $u = Get-JitManagedUser $Name',
    '  if ($null -eq $u) { return }',
    '  $expires = [DateTimeOffset]::FromUnixTimeMilliseconds($ExpiresMs).UtcDateTime',
    '  $sid = [string]$u.SID',
    '  Set-LocalUser -SID $sid -AccountExpires $expires',
    '  Enable-LocalUser -SID $sid',
    '  Out-JitResult ([ordered]@{ ok = $true; enabled = [bool](Get-LocalUser -SID $sid).Enabled })',
  ],
  disable: [
    '  $u = Find-JitUser $Name',
    '  if ($null -eq $u) { Out-JitResult ([ordered]@{ ok = $true; exists = $false }); return }',
    `  if (-not (Test-JitManaged $u)) { ${NOT_MANAGED_LINE}; return }`,
    '  $sid = [string]$u.SID',
    '  Disable-LocalUser -SID $sid -Confirm:$false',
    // Why also expire it now: a disabled account can be enabled again by anyone with the right
    // (an administrator, a script, a management tool); an expired one still cannot log on.
    '  $now = [DateTime]::UtcNow',
    '  Set-LocalUser -SID $sid -AccountExpires $now',
    // Read back: windows.ts checks both took.
    '  $v = Get-LocalUser -SID $sid',
    '  $expires = $null',
    '  if ($null -ne $v.AccountExpires) { $expires = ([DateTimeOffset]$v.AccountExpires.ToUniversalTime()).ToUnixTimeMilliseconds() }',
    '  Out-JitResult ([ordered]@{ ok = $true; exists = $true; enabled = [bool]$v.Enabled; expiresMs = $expires; nowMs = ([DateTimeOffset]$now).ToUnixTimeMilliseconds() })',
  ],
  logoff: LOGOFF_BODY,
  delete: [
    '  $u = Find-JitUser $Name',
    '  if ($null -eq $u) { Out-JitResult ([ordered]@{ ok = $true; deleted = $false }); return }',
    `  if (-not (Test-JitManaged $u)) { ${NOT_MANAGED_LINE}; return }`,
    // Why the account alone, by SID: the account is what must go at the end of a grant, and
    // nothing in its profile may hold that up (a folder that shuts SYSTEM out made the profile
    // deletion, and with it the delete, fail for ever: winget-cli#3365). The profile is purge's
    // job (windows-purge.ts), retried on its own, found by the SID saved at creation.
    '  Remove-LocalUser -SID ([string]$u.SID) -Confirm:$false',
    '  Out-JitResult ([ordered]@{ ok = $true; deleted = $true })',
  ],
  purge: PURGE_BODY,
  installHelper: [
    // Why CreateDirectory: literal path (New-Item -Path would expand wildcards such as [ ]).
    '  $null = [System.IO.Directory]::CreateDirectory($Dir)',
    // Only SYSTEM and Administrators, nothing inherited, owned by Administrators: nobody else may
    // replace the scripts that receive passwords (jit-set-password.ps1) or run as SYSTEM
    // (jit-backstop.ps1, windows-backstop.ts), nor re-grant themselves access as owner.
    "  $admins = New-Object System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-32-544'",
    "  $system = New-Object System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-18'",
    '  $acl = New-Object System.Security.AccessControl.DirectorySecurity',
    '  $acl.SetOwner($admins)',
    '  $acl.SetAccessRuleProtection($true, $false)',
    '  foreach ($id in @($system, $admins)) {',
    "    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule -ArgumentList $id, 'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow'))",
    '  }',
    '  Set-Acl -LiteralPath $Dir -AclObject $acl',
    '  $path = Join-Path $Dir $File',
    // Why delete first: a file created before the directory was locked keeps its own ACL.
    '  if (Test-Path -LiteralPath $path) { Remove-Item -LiteralPath $path -Force -Confirm:$false }',
    '  [System.IO.File]::WriteAllText($path, ($Lines -join "`r`n") + "`r`n", [System.Text.Encoding]::ASCII)',
    "  $hash = (Get-FileHash -LiteralPath $path -Algorithm SHA256).Hash",
    '  Out-JitResult ([ordered]@{ ok = $true; path = $path; sha256 = $hash })',
  ],
  dropHelper: [
    '  $path = Join-Path $Dir $File',
    '  $removed = Test-Path -LiteralPath $path',
    '  if ($removed) { Remove-Item -LiteralPath $path -Force -Confirm:$false }',
    // The directory only when nothing else is in it.
    '  if ([System.IO.Directory]::Exists($Dir) -and @([System.IO.Directory]::GetFileSystemEntries($Dir)).Count -eq 0) { [System.IO.Directory]::Delete($Dir) }',
    '  Out-JitResult ([ordered]@{ ok = $true; removed = $removed })',
  ],
  // The backstop's scheduled task (windows-backstop.ts).
  armBackstop: ARM_BODY,
  disarmBackstop: DISARM_BODY,
  dropBackstops: DROP_BODY,
};

/** The prelude variables each operation's body reads. */
export const OP_PARAMS: Record<Op, readonly string[]> = {
  ...ELEVATION_PARAMS,
  lookup: ['Name'],
  list: [],
  create: ['Name', 'Description', 'ExpiresMs', 'GroupSid'],
  setGroups: ['Name', 'GroupSid'],
  enable: ['Name', 'ExpiresMs'],
  disable: ['Name'],
  logoff: ['Name'],
  delete: ['Name'],
  purge: ['Name', 'Sid'],
  installHelper: ['Dir', 'File', 'Lines'],
  dropHelper: ['Dir', 'File'],
  armBackstop: ['Name', 'Sid', 'AtMs', 'Execute', 'Arguments', 'HelperPath', 'HelperHash'],
  disarmBackstop: ['Name'],
  dropBackstops: [],
};

/** Lines that follow the prelude in every session script, up to and including the body. */
export function constantPart(op: Op): string[] {
  return [...COMMON, 'try {', ...OP_BODY[op], '} catch {', ...CATCH, '}', '}'];
}

/** The script for one operation; `params` must be exactly OP_PARAMS[op]. */
export function sessionScript(op: Op, params: Record<string, PsParam>): string {
  const want = [...OP_PARAMS[op]].sort().join(',');
  if (Object.keys(params).sort().join(',') !== want) throw new Error(`${op}: parameters must be ${want}`);
  const prelude = OP_PARAMS[op].flatMap((p) => paramLines(p, params[p]!));
  const script = ['& {', `# jit-access op=${op}`, ...prelude, ...constantPart(op)].join('\n');
  assertTransportSafe(script);
  return script;
}

/**
 * The password helper, run as `powershell.exe -File <helper> -Name <name>` with the password
 * on its stdin (design in windows.ts). Constant text: it is written once into an
 * admin-only directory by the installHelper operation.
 *
 * ⚠️ Reading [Console]::In inside a -File script with redirected stdin is from the notes
 * (§1.7), not run on Windows here.
 */
export const PASSWORD_HELPER_LINES: readonly string[] = [
  '# jit-access password helper, installed by the jit-access agent: do not edit.',
  "# Sets a jit-access account's password read from standard input, so that the password",
  '# never appears in a command line, a script text or a PowerShell history, then clears',
  '# UF_PASSWD_NOTREQD and PasswordExpired.',
  // (?-i): ValidatePattern is case-insensitive by default.
  "param([Parameter(Mandatory = $true)][ValidatePattern('(?-i)^[a-z][a-z0-9_-]{0,19}$')][string]$Name)",
  '& {',
  ...COMMON,
  'try {',
  // Why character by character into a SecureString: the plain text never exists as one
  // PowerShell string, so it cannot reach a variable dump or a cmdlet's parameter binding;
  // Module Logging records cmdlet parameter values, and ConvertTo-SecureString -String would
  // put the password there. Set-LocalUser then only ever sees a SecureString.
  '  $pw = New-Object System.Security.SecureString',
  '  while ($true) {',
  '    $c = [Console]::In.Read()',
  '    if ($c -lt 0 -or $c -eq 10 -or $c -eq 13) { break }',
  '    $pw.AppendChar([char]$c)',
  '  }',
  '  $pw.MakeReadOnly()',
  "  if ($pw.Length -eq 0) { Out-JitResult ([ordered]@{ ok = $false; code = 'COMMAND_FAILED'; message = 'no password on standard input' }); return }",
  '  $u = Get-JitManagedUser $Name',
  '  if ($null -eq $u) { return }',
  // -PasswordNeverExpires: New-LocalUser -NoPassword cannot take it (parameter set "Password"),
  // and a site's maximum password age must not cut a grant short.
  '  $sid = [string]$u.SID',
  '  Set-LocalUser -SID $sid -Password $pw -PasswordNeverExpires $true',
  // Why: New-LocalUser sets UF_PASSWD_NOTREQD (0x20), which lets the account be given an empty
  // password later, and Set-LocalUser cannot clear it (PowerShell#11965); the account may also
  // carry "must change password at next logon", which a one-off account's user cannot satisfy
  // and which would show the mailed password as expired. Both through the WinNT ADSI provider,
  // on the object whose SID we checked (the name alone could bind to another object).
  "  $adsi = [ADSI]('WinNT://' + $env:COMPUTERNAME + '/' + $Name + ',user')",
  "  if ([System.Security.Principal.SecurityIdentifier]::new([byte[]]$adsi.Get('objectSid'), 0).Value -ne $sid) { Out-JitResult ([ordered]@{ ok = $false; code = 'COMMAND_FAILED'; message = 'ADSI found another account of that name' }); return }",
  "  $adsi.Put('UserFlags', ([int]$adsi.Get('UserFlags') -band (-bnot 0x20)))",
  "  $adsi.Put('PasswordExpired', 0)",
  '  $adsi.SetInfo()',
  // Read back from the SAM: a creation whose account keeps either flag fails (and is undone).
  '  $adsi.RefreshCache()',
  "  if ((([int]$adsi.Get('UserFlags')) -band 0x20) -ne 0 -or [int]$adsi.Get('PasswordExpired') -ne 0) { Out-JitResult ([ordered]@{ ok = $false; code = 'COMMAND_FAILED'; message = 'UF_PASSWD_NOTREQD or PasswordExpired is still set after clearing' }); return }",
  '  Out-JitResult ([ordered]@{ ok = $true })',
  '} catch {',
  ...CATCH,
  '}',
  '}',
];

/** The helper file's exact content (CRLF, as installHelper writes it). */
export function passwordHelperText(): string {
  return `${PASSWORD_HELPER_LINES.join('\r\n')}\r\n`;
}

/** The session command that makes LocalAccounts usable under PowerShell 7.3+ (notes §1 [W8]). */
export const PWSH_IMPORT = [
  '& {',
  '# jit-access op=import',
  'Import-Module Microsoft.PowerShell.LocalAccounts -UseWindowsPowerShell -Scope Global -WarningAction SilentlyContinue',
  '}',
].join('\n');

for (const op of Object.keys(OP_BODY) as Op[]) assertTransportSafe(['& {', ...constantPart(op)].join('\n'));
assertTransportSafe(PASSWORD_HELPER_LINES.join('\n'));
