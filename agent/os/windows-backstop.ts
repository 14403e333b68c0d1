/**
 * The backstop's PowerShell (armBackstop / disarmBackstop; the TypeScript side is
 * windows-backstop-arm.ts). At enable the agent registers a scheduled task that ends the account
 * at the grant's end even if the agent is dead then (crashed, hung, killed, uninstalled by hand):
 *
 *   \jit-access\backstop-<name>, as SYSTEM (S-1-5-18, LogonType ServiceAccount: no password is
 *   stored, it runs with nobody logged on), one trigger at the end's exact instant written in UTC
 *   (`…Z`), StartWhenAvailable (a machine that was off or asleep then runs it when it is back),
 *   allowed on batteries, 5 minutes at most, and one action: 64-bit Windows PowerShell running
 *   the constant helper below, `-File <helper dir>\jit-backstop.ps1 -Name <name> -Sid <SID>`.
 *
 * THE HELPER is a fixed text, like the password helper: installed by the installHelper operation
 * into the admin-only helper folder (%ProgramFiles%\jit-access\ps), its SHA-256 checked at
 * install and again by the arm script right before it registers the task. Nothing of an account
 * is in it; the name and SID come as parameters, checked by ValidatePattern. It is self-contained
 * (the agent is not running when it runs): the common functions, and one logoff pass with the
 * WTS interop of windows-logoff.ts. It finds the account by SID (SIDs are never reused), and acts
 * only if that account still has the name and our tag; then Disable-LocalUser, AccountExpires =
 * now, and logoff passes (WTSLogoffSession for each session, every process of the SID ended)
 * until nothing is left, about 15 s at most. Each step runs even if an earlier one failed. Exit
 * code 0: done, or nothing of ours there; 1: something failed or is left (Task Scheduler's
 * Last Run Result).
 *
 * WHY THE TRIGGER IS WRITTEN BY HAND. A StartBoundary without an offset means the machine's
 * local time when it fires (ITrigger::put_StartBoundary), and what New-ScheduledTaskTrigger -At
 * makes of a DateTime is not documented. So the script gives -At the UTC DateTime
 * ([DateTimeOffset]::FromUnixTimeMilliseconds(…).UtcDateTime, Kind Utc) and then sets
 * StartBoundary itself to `yyyy-MM-ddTHH:mm:ssZ` (format 's', invariant culture, so no other
 * calendar or digits), which Task Scheduler keeps as a UTC instant whatever the zone, now or
 * later. windows-backstop-arm.ts reads it back and refuses a boundary without an offset.
 * EndBoundary (10 years on) is there because the documentation says StartWhenAvailable applies
 * only to time-based tasks with an end boundary.
 *
 * ⚠️ Nothing here was run on Windows (see windows.ts): ScheduledTasks cmdlet behaviour is from
 * the documentation; the error ids for a missing task are not documented (category
 * ObjectNotFound, id CmdletizationQuery_NotFound…, as seen in published transcripts).
 */
import { CATCH, COMMON } from './windows-common.ts';
import { logoffPasses } from './windows-logoff.ts';
import { assertTransportSafe, psInt, psQuote } from './windows-quote.ts';

/** File name of the backstop helper inside the helper directory. */
export const BACKSTOP_FILE = 'jit-backstop.ps1';
/** Task Scheduler folder of every backstop task. */
export const BACKSTOP_TASK_PATH = '\\jit-access\\';
/** EndBoundary = the end plus this many days (StartWhenAvailable needs an end boundary). */
export const BACKSTOP_END_DAYS = 3650;
/** The SID of a local account, as the helper's ValidatePattern takes it. */
export const LOCAL_SID_PATTERN = '^S-1-5-21-\\d{1,10}-\\d{1,10}-\\d{1,10}-\\d{1,10}$';

export const backstopTaskName = (name: string): string => `backstop-${name}`;

/** The constant helper, run by the task as `powershell.exe … -File jit-backstop.ps1 -Name N -Sid S`. */
export const BACKSTOP_HELPER_LINES: readonly string[] = [
  '# jit-access backstop, installed by the jit-access agent: do not edit.',
  '# Run as SYSTEM by the scheduled task \\jit-access\\backstop-<name> at the end of a grant, so that the',
  '# account ends even if the agent is not running then. Only if the account with that SID still has',
  '# that name and the jit-access tag: Disable-LocalUser, AccountExpires = now, then every session of',
  '# it logged off and every process of it ended. Exit code 0: done, or nothing of ours to do; 1: failed.',
  // (?-i): ValidatePattern is case-insensitive by default.
  `param([Parameter(Mandatory = $true)][ValidatePattern('(?-i)^[a-z][a-z0-9_-]{0,19}$')][string]$Name, [Parameter(Mandatory = $true)][ValidatePattern(${psQuote(`(?-i)${LOCAL_SID_PATTERN}`)})][string]$Sid)`,
  '& {',
  ...COMMON,
  'try {',
  '  $u = $null',
  "  try { $u = Get-LocalUser -SID $Sid } catch { if (-not ((Test-JitError $_ 'UserNotFound') -or (Test-JitError $_ 'PrincipalNotFound'))) { throw } }",
  // By SID, then the name and the tag: an account that took the name afterwards has another SID.
  '  if ($null -eq $u -or -not [string]::Equals([string]$u.Name, $Name, [System.StringComparison]::OrdinalIgnoreCase) -or -not (Test-JitManaged $u)) {',
  '    Out-JitResult ([ordered]@{ ok = $true; acted = $false })',
  '    return',
  '  }',
  // The logoff pass reads $sid (and $u). PowerShell names are case-insensitive: this is a local
  // $Sid in this block, set to the SID of the account read back, which equals the parameter.
  '  $sid = [string]$u.SID',
  '  $errors = New-Object System.Collections.ArrayList',
  "  try { Disable-LocalUser -SID $sid -Confirm:$false } catch { $null = $errors.Add('Disable-LocalUser: ' + (Get-JitErrorRecord $_).Exception.Message) }",
  // Why also expire it: a disabled account can be enabled again, an expired one still cannot log on.
  "  try { Set-LocalUser -SID $sid -AccountExpires ([DateTime]::UtcNow) } catch { $null = $errors.Add('Set-LocalUser -AccountExpires: ' + (Get-JitErrorRecord $_).Exception.Message) }",
  '  $left = @()',
  '  $processesLeft = 0',
  ...logoffPasses('  '),
  '  $v = Get-LocalUser -SID $sid',
  '  $ok = ($errors.Count -eq 0) -and (-not $v.Enabled) -and (@($left).Count -eq 0) -and ($processesLeft -eq 0)',
  '  Out-JitResult ([ordered]@{ ok = $ok; acted = $true; enabled = [bool]$v.Enabled; sessionsLeft = @($left); processesLeft = $processesLeft; errors = @($errors) })',
  '  if (-not $ok) { exit 1 }',
  '} catch {',
  ...CATCH,
  '  exit 1',
  '}',
  '}',
];

/** The helper file's exact content (CRLF, as installHelper writes it). */
export function backstopHelperText(): string {
  return `${BACKSTOP_HELPER_LINES.join('\r\n')}\r\n`;
}

/** Shared by the task operations: the folder, and "no such task" told apart from other errors. */
export const TASK_FUNCTIONS: readonly string[] = [
  `  $taskPath = ${psQuote(BACKSTOP_TASK_PATH)}`,
  '  function Test-JitTaskMissing($Err) {',
  '    $r = Get-JitErrorRecord $Err',
  "    ([string]$r.CategoryInfo.Category -eq 'ObjectNotFound') -or ([string]$r.FullyQualifiedErrorId).StartsWith('CmdletizationQuery_NotFound')",
  '  }',
  '  function Find-JitTask([string]$TaskName) {',
  '    try { Get-ScheduledTask -TaskPath $taskPath -TaskName $TaskName -ErrorAction Stop } catch { if (Test-JitTaskMissing $_) { $null } else { throw } }',
  '  }',
  '  function Get-JitTasks {',
  '    try { @(Get-ScheduledTask -TaskPath $taskPath -ErrorAction Stop) } catch { if (Test-JitTaskMissing $_) { @() } else { throw } }',
  '  }',
];

/** The helper the task will run, checked right before the task is registered: reads $HelperPath, $HelperHash. */
export const HELPER_CHECK: readonly string[] = [
  '  $hash = $null',
  '  if (Test-Path -LiteralPath $HelperPath -PathType Leaf) { $hash = (Get-FileHash -LiteralPath $HelperPath -Algorithm SHA256).Hash }',
  "  if ($hash -ne $HelperHash) { Out-JitResult ([ordered]@{ ok = $false; code = 'COMMAND_FAILED'; message = 'the backstop helper is missing or not ours' }); return }",
];

/**
 * Registers the task $taskName (described by $description) firing once at $AtMs, running
 * $Execute $Arguments as SYSTEM, and prints what Task Scheduler stored (windows-backstop-arm.ts
 * checks every field). Used by armBackstop and armRestore after their own checks.
 */
export const REGISTER_TASK: readonly string[] = [
  '  $at = [DateTimeOffset]::FromUnixTimeMilliseconds($AtMs).UtcDateTime',
  '  $inv = [System.Globalization.CultureInfo]::InvariantCulture',
  '  $trigger = New-ScheduledTaskTrigger -Once -At $at',
  // See WHY THE TRIGGER IS WRITTEN BY HAND above.
  "  $trigger.StartBoundary = $at.ToString('s', $inv) + 'Z'",
  `  $trigger.EndBoundary = $at.AddDays(${psInt(BACKSTOP_END_DAYS)}).ToString('s', $inv) + 'Z'`,
  '  $action = New-ScheduledTaskAction -Execute $Execute -Argument $Arguments',
  "  $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest",
  '  $settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit (New-TimeSpan -Minutes 5) -MultipleInstances IgnoreNew',
  // -Force replaces the task of an earlier arm: one task per account (per grant for a restore).
  '  $null = Register-ScheduledTask -TaskPath $taskPath -TaskName $taskName -Description $description -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Force',
  '  $t = Get-ScheduledTask -TaskPath $taskPath -TaskName $taskName',
  '  $uid = [string]$t.Principal.UserId',
  '  $principalSid = $null',
  '  try { $principalSid = (New-Object System.Security.Principal.SecurityIdentifier -ArgumentList $uid).Value } catch {',
  '    try { $principalSid = (New-Object System.Security.Principal.NTAccount -ArgumentList $uid).Translate([System.Security.Principal.SecurityIdentifier]).Value } catch { }',
  '  }',
  '  $triggers = @(foreach ($x in $t.Triggers) { [ordered]@{ type = [string]$x.CimClass.CimClassName; start = [string]$x.StartBoundary; end = [string]$x.EndBoundary; enabled = [bool]$x.Enabled } })',
  '  $actions = @(foreach ($x in $t.Actions) { [ordered]@{ type = [string]$x.CimClass.CimClassName; execute = [string]$x.Execute; arguments = [string]$x.Arguments } })',
  '  $s = $t.Settings',
  '  $task = [ordered]@{ path = [string]$t.TaskPath; name = [string]$t.TaskName; triggers = $triggers; actions = $actions; principalSid = $principalSid; logonType = [string]$t.Principal.LogonType; runLevel = [string]$t.Principal.RunLevel }',
  "  $task['startWhenAvailable'] = [bool]$s.StartWhenAvailable",
  "  $task['executionTimeLimit'] = [string]$s.ExecutionTimeLimit",
  "  $task['disallowStartIfOnBatteries'] = [bool]$s.DisallowStartIfOnBatteries",
  "  $task['stopIfGoingOnBatteries'] = [bool]$s.StopIfGoingOnBatteries",
  "  $task['enabled'] = [bool]$s.Enabled",
  '  Out-JitResult ([ordered]@{ ok = $true; sha256 = $hash; task = $task })',
];

/** armBackstop: reads $Name, $Sid, $AtMs, $Execute, $Arguments, $HelperPath, $HelperHash. */
export const ARM_BODY: readonly string[] = [
  ...TASK_FUNCTIONS,
  '  $u = Get-JitManagedUser $Name',
  '  if ($null -eq $u) { return }',
  "  if ([string]$u.SID -ne $Sid) { Out-JitResult ([ordered]@{ ok = $false; code = 'COMMAND_FAILED'; message = 'the account has another SID than the one looked up' }); return }",
  ...HELPER_CHECK,
  "  $taskName = 'backstop-' + $Name",
  "  $description = 'jit-access: ends the account ' + $Name + ' at the end of its grant if the agent cannot. Installed by the jit-access agent.'",
  ...REGISTER_TASK,
];

/** Unregisters $taskName; a missing task is success (disarmBackstop, disarmRestore). */
export const UNREGISTER_TASK: readonly string[] = [
  '  $removed = $null -ne (Find-JitTask $taskName)',
  '  if ($removed) {',
  '    try { Unregister-ScheduledTask -TaskPath $taskPath -TaskName $taskName -Confirm:$false } catch { if (-not (Test-JitTaskMissing $_)) { throw } }',
  '  }',
  '  Out-JitResult ([ordered]@{ ok = $true; removed = $removed; left = ($null -ne (Find-JitTask $taskName)) })',
];

/** disarmBackstop: reads $Name. */
export const DISARM_BODY: readonly string[] = [...TASK_FUNCTIONS, "  $taskName = 'backstop-' + $Name", ...UNREGISTER_TASK];

/** dropBackstops (uninstall): every task in \jit-access\, then the folder itself. */
export const DROP_BODY: readonly string[] = [
  ...TASK_FUNCTIONS,
  '  $tasks = @(Get-JitTasks)',
  '  foreach ($x in $tasks) {',
  '    try { Unregister-ScheduledTask -TaskPath $taskPath -TaskName $x.TaskName -Confirm:$false } catch { if (-not (Test-JitTaskMissing $_)) { throw } }',
  '  }',
  // Unregister-ScheduledTask leaves the folder; Task Scheduler's COM API deletes it once empty.
  "  $service = New-Object -ComObject 'Schedule.Service'",
  '  $service.Connect()',
  "  $folderName = $taskPath.Trim('\\')",
  '  $folder = $null',
  "  try { $folder = $service.GetFolder('\\' + $folderName) } catch { }",
  // GetTasks(1): hidden tasks too.
  "  if ($null -ne $folder -and $folder.GetTasks(1).Count -eq 0 -and $folder.GetFolders(0).Count -eq 0) { $service.GetFolder('\\').DeleteFolder($folderName, 0) }",
  '  $folderLeft = $true',
  "  try { $null = $service.GetFolder('\\' + $folderName) } catch { $folderLeft = $false }",
  '  Out-JitResult ([ordered]@{ ok = $true; removed = $tasks.Count; left = @(Get-JitTasks).Count; folder = $folderLeft })',
];

assertTransportSafe(BACKSTOP_HELPER_LINES.join('\n'));
for (const body of [ARM_BODY, DISARM_BODY, DROP_BODY]) assertTransportSafe(['& {', ...body].join('\n'));
