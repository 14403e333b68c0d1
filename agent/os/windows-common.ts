/**
 * The PowerShell text every Windows script starts with (windows-scripts.ts builds the session
 * scripts and the password helper from it, windows-backstop.ts the backstop helper): the
 * ownership marker, the wizard groups' SIDs, the constant helper functions (COMMON) and the
 * catch block that turns any failure into a JSON error record (CATCH). Constant text only;
 * read windows-scripts.ts's header for the rules every script follows.
 */
import { GROUPS, type Group } from '../../protocol/groups.ts';
import { OWNERSHIP_TAG_PREFIX } from './backend.ts';
import { psQuote } from './windows-quote.ts';

/** Start of the `-Description` of every account we create: the ownership marker. */
export const MARKER = OWNERSHIP_TAG_PREFIX;
/** Prefix of the one result line each script prints. */
export const RESULT_PREFIX = 'jit-result ';

/**
 * Well-known SIDs of the wizard's groups. Why SIDs: group names are localized
 * ("Administratoren", "Administrateurs"), the SIDs are the same on every Windows (notes §1 [W3]).
 */
export const GROUP_SIDS: Record<Group, string> = {
  Administrators: 'S-1-5-32-544',
  'Power Users': 'S-1-5-32-547',
  Users: 'S-1-5-32-545',
};

const GROUP_TABLE = `[ordered]@{ ${GROUPS.map((g) => `${psQuote(g)} = ${psQuote(GROUP_SIDS[g])}`).join('; ')} }`;

/**
 * Helpers shared by every script (the session's, the password helper's and the backstop's).
 * All of it is constant text.
 *
 * SIDs are always taken as `[string]$x.SID` and passed to -SID as strings: a SecurityIdentifier
 * converts to its S-1-… form, and so does the deserialized copy that pwsh's Windows PowerShell
 * compatibility (-UseWindowsPowerShell, notes §1 [W8]) returns, whose `.Value` may be gone.
 */
export const COMMON: readonly string[] = [
  "$ErrorActionPreference = 'Stop'",
  // Why: progress records of the CIM cmdlets can reach a redirected stream as CLIXML.
  "$ProgressPreference = 'SilentlyContinue'",
  `$Marker = ${psQuote(MARKER)}`,
  `$Groups = ${GROUP_TABLE}`,
  'function Out-JitResult($Value) {',
  '  $json = ConvertTo-Json -InputObject $Value -Compress -Depth 6',
  // ASCII-only output whatever the console code page; \uXXXX is valid JSON.
  "  $json = [regex]::Replace($json, '[^\\x20-\\x7e]', { param($m) '\\u{0:x4}' -f [int][char]$m.Value })",
  "  [Console]::Out.WriteLine('jit-result ' + $json)",
  '}',
  // Why: with -ErrorAction Stop a cmdlet's non-terminating error (LocalAccounts reports
  // UserExists, MemberExists… with WriteError) may arrive wrapped in ActionPreferenceStopException.
  'function Get-JitErrorRecord($Err) {',
  '  if ($Err.Exception -is [System.Management.Automation.ActionPreferenceStopException] -and $null -ne $Err.Exception.ErrorRecord) { return $Err.Exception.ErrorRecord }',
  '  $Err',
  '}',
  // Matches by exception type name or by FullyQualifiedErrorId ("UserNotFound,Microsoft.PowerShell.Commands.GetLocalUserCommand"),
  // never by message: messages are localized.
  'function Test-JitError($Err, [string]$Id) {',
  '  $r = Get-JitErrorRecord $Err',
  "  ($r.Exception.GetType().Name -eq ($Id + 'Exception')) -or ([string]$r.FullyQualifiedErrorId).StartsWith($Id + ',')",
  '}',
  // Why no wildcard worry: -Name accepts wildcards, but validated names contain no * ? [ ].
  'function Find-JitUser([string]$Name) {',
  "  try { Get-LocalUser -Name $Name -ErrorAction Stop } catch { if (Test-JitError $_ 'UserNotFound') { $null } else { throw } }",
  '}',
  'function Test-JitManaged($User) {',
  '  ([string]$User.Description).StartsWith($Marker, [System.StringComparison]::Ordinal)',
  '}',
  'function Get-JitManagedUser([string]$Name) {',
  '  $u = Find-JitUser $Name',
  "  if ($null -eq $u) { Out-JitResult ([ordered]@{ ok = $false; code = 'NOT_FOUND'; message = 'no such account' }); return $null }",
  "  if (-not (Test-JitManaged $u)) { Out-JitResult ([ordered]@{ ok = $false; code = 'NOT_MANAGED'; message = 'the account lacks the jit-access marker' }); return $null }",
  '  $u',
  '}',
  // Why the fallback: Get-LocalGroupMember throws "Failed to compare two elements in the array"
  // when a group holds an orphaned or Azure AD SID (notes §1.6 [W10], fallback ⚠️ unverified).
  'function Get-JitMemberSids([string]$GroupSid) {',
  '  try {',
  '    @(Get-LocalGroupMember -SID $GroupSid | ForEach-Object { [string]$_.SID })',
  '  } catch {',
  "    $filter = 'LocalAccount=TRUE AND SID=''{0}''' -f $GroupSid",
  '    @(Get-CimInstance -ClassName Win32_Group -Filter $filter | Get-CimAssociatedInstance -ResultClassName Win32_UserAccount | ForEach-Object { [string]$_.SID })',
  '  }',
  '}',
  'function Get-JitMembers {',
  '  $m = @{}',
  '  foreach ($k in @($Groups.Keys)) { $m[$k] = @(Get-JitMemberSids $Groups[$k]) }',
  '  $m',
  '}',
  'function ConvertTo-JitInfo($User, $Members) {',
  '  $sid = [string]$User.SID',
  '  $in = @(foreach ($k in @($Groups.Keys)) { if ($Members[$k] -contains $sid) { $k } })',
  '  [ordered]@{ name = [string]$User.Name; sid = $sid; enabled = [bool]$User.Enabled; description = [string]$User.Description; groups = $in }',
  '}',
  // Exactly one wizard group. Members are given by SID string, which Add-LocalGroupMember
  // takes as is (no name lookup that a domain account of the same name could answer).
  'function Set-JitGroup($User, [string]$Want) {',
  '  $sid = [string]$User.SID',
  '  foreach ($g in @($Groups.Values)) {',
  '    if ($g -eq $Want) {',
  "      try { Add-LocalGroupMember -SID $g -Member $sid } catch { if (-not (Test-JitError $_ 'MemberExists')) { throw } }",
  '    } else {',
  "      try { Remove-LocalGroupMember -SID $g -Member $sid -Confirm:$false } catch { if (-not (Test-JitError $_ 'MemberNotFound')) { throw } }",
  '    }',
  '  }',
  '}',
];

/** Turns any failure into an error record the TypeScript side maps to an AccountError code. */
export const CATCH: readonly string[] = [
  '  $r = Get-JitErrorRecord $_',
  '  Out-JitResult ([ordered]@{ ok = $false; error = [ordered]@{ type = $r.Exception.GetType().FullName; fqid = [string]$r.FullyQualifiedErrorId; category = [string]$r.CategoryInfo.Category; message = [string]$r.Exception.Message; hresult = [int]$r.Exception.HResult; native = [string]$r.Exception.NativeErrorCode } })',
];

export const NOT_MANAGED_LINE =
  "Out-JitResult ([ordered]@{ ok = $false; code = 'NOT_MANAGED'; message = 'the account lacks the jit-access marker' })";
