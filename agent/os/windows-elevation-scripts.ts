/**
 * The PowerShell of elevate-account and the rogue-admin guard on Windows (windows-elevation.ts),
 * put together with the other operations by windows-scripts.ts and built by its rules: constant
 * text, values only in the prelude. Accounts are acted on by SID: a local account, or a domain
 * one (`DOMAIN\user` or its SID) put into a local group.
 */
import { LOGOFF_PASS } from './windows-logoff.ts';
import { RESTORE_BODY, RESTORE_PARAMS } from './windows-restore.ts';

/**
 * Resolve-JitAccount: a local user by name, `COMPUTER\name`, `.\name` or SID; else a domain
 * account by `DOMAIN\user` or SID, through the NT account <-> SID translation (which asks the
 * domain). $null when neither knows it.
 */
const RESOLVE: readonly string[] = [
  '  function Resolve-JitAccount([string]$Account) {',
  '    $local = $null',
  '    $sid = $null',
  "    if ($Account -like 'S-1-*') {",
  '      $sid = $Account',
  "      try { $local = Get-LocalUser -SID $sid -ErrorAction Stop } catch { if (-not (Test-JitError $_ 'UserNotFound')) { throw } }",
  "    } elseif ($Account.Contains('\\')) {",
  "      $parts = $Account -split '\\\\', 2",
  "      if ($parts[0] -eq $env:COMPUTERNAME -or $parts[0] -eq '.') { $local = Find-JitUser $parts[1] }",
  '    } else {',
  '      $local = Find-JitUser $Account',
  '    }',
  "    if ($null -ne $local) { return [ordered]@{ name = [string]$local.Name; sid = [string]$local.SID; domain = ''; local = $true; managed = [bool](Test-JitManaged $local) } }",
  '    try {',
  '      if ($null -eq $sid) { $sid = ([System.Security.Principal.NTAccount]$Account).Translate([System.Security.Principal.SecurityIdentifier]).Value }',
  '      $nt = ([System.Security.Principal.SecurityIdentifier]$sid).Translate([System.Security.Principal.NTAccount]).Value',
  '    } catch { return $null }',
  "    $parts = $nt -split '\\\\', 2",
  '    [ordered]@{ name = $parts[-1]; sid = $sid; domain = $parts[0]; local = $false; managed = $false }',
  '  }',
];

/** A member's name for people (DOMAIN\name), or the SID where it does not translate (orphaned). */
const NAME_OF = [
  '  function Get-JitSidName([string]$Sid) {',
  '    try { ([System.Security.Principal.SecurityIdentifier]$Sid).Translate([System.Security.Principal.NTAccount]).Value } catch { $Sid }',
  '  }',
];

export const ELEVATION_BODY = {
  elevAccount: [
    ...RESOLVE,
    '  $a = Resolve-JitAccount $Account',
    "  if ($null -ne $a) { $a['admin'] = (@(Get-JitMemberSids 'S-1-5-32-544') -contains $a.sid) }",
    '  Out-JitResult ([ordered]@{ ok = $true; account = $a })',
  ],
  elevList: [
    "  $admins = @(Get-JitMemberSids 'S-1-5-32-544')",
    '  $users = @(Get-LocalUser | ForEach-Object { [ordered]@{ name = [string]$_.Name; sid = [string]$_.SID; managed = [bool](Test-JitManaged $_); admin = ($admins -contains [string]$_.SID) } })',
    '  Out-JitResult ([ordered]@{ ok = $true; users = $users })',
  ],
  // $Action: check, add or remove; answers the membership afterwards (read back).
  elevMember: [
    "  if ($Action -eq 'add') { try { Add-LocalGroupMember -SID $GroupSid -Member $Sid } catch { if (-not (Test-JitError $_ 'MemberExists')) { throw } } }",
    "  if ($Action -eq 'remove') { try { Remove-LocalGroupMember -SID $GroupSid -Member $Sid -Confirm:$false } catch { if (-not (Test-JitError $_ 'MemberNotFound')) { throw } } }",
    '  Out-JitResult ([ordered]@{ ok = $true; member = (@(Get-JitMemberSids $GroupSid) -contains $Sid) })',
  ],
  elevMembers: [
    ...NAME_OF,
    '  $out = @(foreach ($g in $GroupSids) { foreach ($s in @(Get-JitMemberSids $g)) { [ordered]@{ group = $g; sid = $s; name = (Get-JitSidName $s) } } })',
    '  $users = @(Get-LocalUser | ForEach-Object { [string]$_.SID })',
    '  Out-JitResult ([ordered]@{ ok = $true; members = $out; users = $users })',
  ],
  // A rogue admin made during the window: disabled, never deleted.
  elevLock: [
    '  $u = $null',
    "  try { $u = Get-LocalUser -SID $Sid -ErrorAction Stop } catch { if (-not (Test-JitError $_ 'UserNotFound')) { throw } }",
    '  if ($null -eq $u) { Out-JitResult ([ordered]@{ ok = $true; locked = $false }); return }',
    '  Disable-LocalUser -SID $Sid -Confirm:$false',
    '  Out-JitResult ([ordered]@{ ok = $true; locked = (-not [bool](Get-LocalUser -SID $Sid).Enabled) })',
  ],
  // One logoff pass over an elevated account (not ours: no marker to check), by SID and name.
  elevLogoff: [
    '  $sid = $Sid',
    '  $u = [pscustomobject]@{ Name = $User }',
    '  $SessionDomain = $Domain',
    ...LOGOFF_PASS,
    '  Out-JitResult ([ordered]@{ ok = $true; sessions = $sessions; processes = $processes; sessionsLeft = $left; processesLeft = $processesLeft })',
  ],
  // The restore timer's task (windows-restore.ts).
  ...RESTORE_BODY,
} as const;

export type ElevationOp = keyof typeof ELEVATION_BODY;

export const ELEVATION_PARAMS: Record<ElevationOp, readonly string[]> = {
  elevAccount: ['Account'],
  elevList: [],
  elevMember: ['Sid', 'GroupSid', 'Action'],
  elevMembers: ['GroupSids'],
  elevLock: ['Sid'],
  elevLogoff: ['Sid', 'User', 'Domain'],
  ...RESTORE_PARAMS,
};
