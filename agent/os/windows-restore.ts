/**
 * The restore timer of an elevation on Windows (RestoreTimers; the TypeScript side is
 * windows-restore-arm.ts): at enable, when the agent put the account in the group, it registers
 * a scheduled task that takes the membership away at the grant's end plus a grace even if the
 * agent is dead then. It is the temporary-account backstop's twin (windows-backstop.ts: the same
 * folder \jit-access\, principal, settings and trigger written in UTC, registered and read back
 * by the same lines), with another helper and one task per grant:
 *
 *   \jit-access\restore-<grant id>, running the constant helper jit-restore.ps1
 *   -Grant <id> -Sid <account SID> -GroupSid <group SID> [-Logoff]
 *
 * THE HELPER takes the account out of the group by SID (a local account or a domain one put into
 * the local group) and, with -Logoff (the grant's endAction), ends every session and process of
 * it, because on Windows the logon token keeps the Administrators SID until the user logs off.
 * It acts once: a one-time trigger does not fire again, so a person an admin later makes an
 * administrator for good is not taken out again by a task the agent could not remove. Exit code 0:
 * done (or nothing to take away); 1: something failed (Task Scheduler's Last Run Result).
 *
 * ⚠️ Nothing here was run on Windows: see windows-backstop.ts.
 */
import { CATCH, COMMON } from './windows-common.ts';
import { logoffPasses } from './windows-logoff.ts';
import { HELPER_CHECK, REGISTER_TASK, TASK_FUNCTIONS, UNREGISTER_TASK } from './windows-backstop.ts';
import { assertTransportSafe, psQuote } from './windows-quote.ts';

/** File name of the restore helper inside the helper directory. */
export const RESTORE_FILE = 'jit-restore.ps1';
/** The SID of an account (local or domain: both are S-1-5-21-…-RID). */
export const ACCOUNT_SID_PATTERN = '^S-1-5-21-\\d{1,10}-\\d{1,10}-\\d{1,10}-\\d{1,10}$';
/** The groups a grant can name: Administrators, Power Users, Users (GROUP_SIDS). */
export const GROUP_SID_PATTERN = '^S-1-5-32-(544|547|545)$';
/** A grant id as a task name takes it (RESTORE_GRANT_ID). */
const GRANT_PATTERN = '^[A-Za-z0-9._-]{1,64}$';

export const restoreTaskName = (grantId: string): string => `restore-${grantId}`;

/** The constant helper, run by the task as `powershell.exe … -File jit-restore.ps1 -Grant G -Sid S -GroupSid GS [-Logoff]`. */
export const RESTORE_HELPER_LINES: readonly string[] = [
  '# jit-access restore, installed by the jit-access agent: do not edit.',
  '# Run as SYSTEM by the scheduled task \\jit-access\\restore-<grant> at the end of an elevation, so that the',
  '# membership the agent added ends even if the agent is not running then: the account (by SID) out of the',
  '# group (by SID), and with -Logoff every session and process of it ended. Exit code 0: done; 1: failed.',
  `param([Parameter(Mandatory = $true)][ValidatePattern(${psQuote(`(?-i)${GRANT_PATTERN}`)})][string]$Grant, [Parameter(Mandatory = $true)][ValidatePattern(${psQuote(`(?-i)${ACCOUNT_SID_PATTERN}`)})][string]$Sid, [Parameter(Mandatory = $true)][ValidatePattern(${psQuote(`(?-i)${GROUP_SID_PATTERN}`)})][string]$GroupSid, [switch]$Logoff)`,
  '& {',
  ...COMMON,
  'try {',
  '  $errors = New-Object System.Collections.ArrayList',
  "  try { Remove-LocalGroupMember -SID $GroupSid -Member $Sid -Confirm:$false } catch { if (-not (Test-JitError $_ 'MemberNotFound')) { $null = $errors.Add('Remove-LocalGroupMember: ' + (Get-JitErrorRecord $_).Exception.Message) } }",
  '  $member = @(Get-JitMemberSids $GroupSid) -contains $Sid',
  '  $left = @()',
  '  $processesLeft = 0',
  '  if ($Logoff) {',
  // The logoff pass reads $sid, $u.Name and $SessionDomain (windows-logoff.ts).
  '    $sid = $Sid',
  '    $nt = $Sid',
  '    try { $nt = ([System.Security.Principal.SecurityIdentifier]$Sid).Translate([System.Security.Principal.NTAccount]).Value } catch { }',
  "    $parts = $nt -split '\\\\', 2",
  '    $u = [pscustomobject]@{ Name = $parts[-1] }',
  "    $SessionDomain = ''",
  '    if ($parts.Count -eq 2 -and $parts[0] -ne $env:COMPUTERNAME) { $SessionDomain = $parts[0] }',
  ...logoffPasses('    '),
  '  }',
  '  $ok = ($errors.Count -eq 0) -and (-not $member) -and (@($left).Count -eq 0) -and ($processesLeft -eq 0)',
  '  Out-JitResult ([ordered]@{ ok = $ok; member = $member; sessionsLeft = @($left); processesLeft = $processesLeft; errors = @($errors) })',
  '  if (-not $ok) { exit 1 }',
  '} catch {',
  ...CATCH,
  '  exit 1',
  '}',
  '}',
];

export const RESTORE_BODY = {
  /** Reads $Grant, $Sid, $GroupSid, $AtMs, $Execute, $Arguments, $HelperPath, $HelperHash. */
  armRestore: [
    ...TASK_FUNCTIONS,
    ...HELPER_CHECK,
    "  $taskName = 'restore-' + $Grant",
    "  $description = 'jit-access: takes ' + $Sid + ' out of ' + $GroupSid + ' at the end of grant ' + $Grant + ' if the agent cannot. Installed by the jit-access agent.'",
    ...REGISTER_TASK,
  ],
  /** Reads $Grant. A missing task is success. */
  disarmRestore: [...TASK_FUNCTIONS, "  $taskName = 'restore-' + $Grant", ...UNREGISTER_TASK],
  /** Uninstall: every restore-* task in \jit-access\ (the folder goes with dropBackstops). */
  dropRestores: [
    ...TASK_FUNCTIONS,
    "  $tasks = @(Get-JitTasks | Where-Object { ([string]$_.TaskName).StartsWith('restore-') })",
    '  foreach ($x in $tasks) {',
    '    try { Unregister-ScheduledTask -TaskPath $taskPath -TaskName $x.TaskName -Confirm:$false } catch { if (-not (Test-JitTaskMissing $_)) { throw } }',
    '  }',
    "  $left = @(Get-JitTasks | Where-Object { ([string]$_.TaskName).StartsWith('restore-') }).Count",
    '  Out-JitResult ([ordered]@{ ok = $true; removed = $tasks.Count; left = $left; folder = $true })',
  ],
} as const;

export const RESTORE_PARAMS = {
  armRestore: ['Grant', 'Sid', 'GroupSid', 'AtMs', 'Execute', 'Arguments', 'HelperPath', 'HelperHash'],
  disarmRestore: ['Grant'],
  dropRestores: [],
} as const;

assertTransportSafe(RESTORE_HELPER_LINES.join('\n'));
