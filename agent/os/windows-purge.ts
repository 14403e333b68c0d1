/**
 * The purge operation's PowerShell: what a deleted account left behind, found by its saved SID.
 * Constant text, put together with the other operations by windows-scripts.ts; reads $Name
 * and $Sid from the prelude (windows.ts has already checked that $Sid is a local account SID
 * with a RID of at least 1000, never a built-in or well-known one).
 *
 * WHAT A DELETED ACCOUNT CAN LEAVE ON WINDOWS, and what purge does about it:
 *
 *   cleaned here, by SID:
 *   - the profile: the Win32_UserProfile instance, the folder (C:\Users\<name>, holding the
 *     registry hive NTUSER.DAT, AppData, the DPAPI keys and Credential Manager vault, the
 *     per-user Start menu, Temp) and the ProfileList\<SID> key (plus a `<SID>.bak` twin);
 *   - scheduled tasks whose principal is the account (its SID, its name or COMPUTER\name).
 *
 *   not cleaned (reported by the lead in the README):
 *   - files it owns outside the profile: in %SystemRoot%\Temp, C:\ProgramData, C:\Users\Public,
 *     other drives, and (as an administrator) anywhere, other users' folders included. Finding
 *     them means reading the owner of every file on every volume, and files an elevated
 *     administrator creates are owned by BUILTIN\Administrators anyway, so the SID would not
 *     find them. Windows never reuses a SID (the RID only grows), so unlike a Unix uid no later
 *     account inherits them: what is left is data, not access;
 *   - ACL entries naming the SID on other objects (harmless for the same reason);
 *   - anything an administrator grant did to the machine under another identity: services,
 *     tasks running as SYSTEM, Run keys, other accounts, installed software. Only an audit can
 *     tell that from what the user was asked to do;
 *   - per-SID records other components keep: AppX registrations
 *     (Appx\AppxAllUserStore\<SID>), Windows Hello/NGC containers, LSA user rights granted to
 *     the SID, the logon screen's last user name.
 *
 * THE PROFILE. A folder whose ACL shuts out SYSTEM (winget's DefaultState folder,
 * winget-cli#3365) makes Remove-CimInstance fail with access denied, for ever. So before it,
 * each folder of the profile that SYSTEM cannot list, or whose ACL denies anything or lacks a
 * SYSTEM full-control entry, is taken over: `takeown.exe /F <dir> /A` (absolute
 * %SystemRoot%\System32 path; /A = owner BUILTIN\Administrators, which gives SYSTEM, a member,
 * the owner's right to write the DACL), then a protected DACL of SYSTEM and Administrators,
 * full control, inherited below, through .NET (Set-Acl). Why this walk and not the one-line
 * `takeown /R /D Y` + `icacls /reset /T`: those recurse on their own and descend through
 * directory junctions (⚠️ the usual "Application Data: Access is denied" lines are them trying),
 * and a standard user can plant a junction in their profile pointing at C:\Windows; as SYSTEM
 * they would take ownership of, and reset, whatever it points at. Our walk lists each folder
 * itself and never enters, nor changes, a reparse point. Why a protected DACL of SYSTEM and
 * Administrators instead of `/reset` (inherit from C:\Users): inheriting would make the
 * deleted user's files readable by every user until the deletion finishes. Files keep their
 * ACLs: their folder's "delete child" right lets SYSTEM delete them whatever they say.
 *
 * Then Remove-CimInstance (DeleteProfile). If the instance is gone but the folder or the key
 * remain (DeleteProfile stopped half way), they are removed directly: the folder with
 * [System.IO.Directory]::Delete(path, $true), which removes a junction without entering it
 * (documented; Windows PowerShell 5.1's Remove-Item -Recurse does not promise that).
 *
 * Guards: nothing happens if an account with this SID exists again; a loaded profile is
 * LOGGED_IN (the caller waits and retries); a special profile, a profile folder that is not a
 * direct child of the profiles directory or is shared with another profile, or is itself a
 * reparse point, is refused (COMMAND_FAILED: a human must look). While anything is left the
 * result is ACCESS_DENIED (an access denied was seen) or COMMAND_FAILED, naming what is left,
 * so the caller retries and alerts.
 */

/** Helpers the purge body defines (constant). */
const PURGE_FUNCTIONS: readonly string[] = [
  'function Test-JitAccessDenied($Err) {',
  '  $r = Get-JitErrorRecord $Err',
  "  ([string]$r.CategoryInfo.Category -eq 'PermissionDenied') -or ($r.Exception.HResult -eq -2147024891) -or ($r.Exception -is [System.UnauthorizedAccessException]) -or ([string]$r.Exception.NativeErrorCode -eq 'AccessDenied')",
  '}',
  // Usable = SYSTEM can list it and its DACL gives SYSTEM full control and denies nothing.
  'function Test-JitDirUsable([string]$Dir) {',
  '  try {',
  '    $null = (New-Object System.IO.DirectoryInfo -ArgumentList $Dir).GetDirectories()',
  '    $acl = Get-Acl -LiteralPath $Dir',
  '    $rules = @($acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier]) | Where-Object { ($_.PropagationFlags -band [System.Security.AccessControl.PropagationFlags]::InheritOnly) -eq 0 })',
  "    if (@($rules | Where-Object { [string]$_.AccessControlType -eq 'Deny' }).Count -gt 0) { return $false }",
  '    $full = [System.Security.AccessControl.FileSystemRights]::FullControl',
  "    @($rules | Where-Object { [string]$_.AccessControlType -eq 'Allow' -and [string]$_.IdentityReference -eq 'S-1-5-18' -and ($_.FileSystemRights -band $full) -eq $full }).Count -gt 0",
  '  } catch { $false }',
  '}',
  // Returns the folders it could not take over.
  'function Reset-JitProfileAcl([string]$Root) {',
  "  $takeown = Join-Path $env:SystemRoot 'System32\\takeown.exe'",
  '  $failed = New-Object System.Collections.ArrayList',
  '  $todo = New-Object System.Collections.Stack',
  '  $todo.Push($Root)',
  '  while ($todo.Count -gt 0) {',
  '    $dir = [string]$todo.Pop()',
  '    if (-not (Test-JitDirUsable $dir)) {',
  // 'Continue' inside: a native program's stderr line must not become a terminating error
  // [PowerShell#4002]; the exit code tells.
  '      $global:LASTEXITCODE = -1',
  "      & { $ErrorActionPreference = 'Continue'; & $takeown /F $dir /A 2>$null | Out-Null }",
  '      if ($LASTEXITCODE -ne 0) { $null = $failed.Add($dir); continue }',
  '      $sec = New-Object System.Security.AccessControl.DirectorySecurity',
  '      $sec.SetAccessRuleProtection($true, $false)',
  "      foreach ($id in @('S-1-5-18', 'S-1-5-32-544')) {",
  '        $who = New-Object System.Security.Principal.SecurityIdentifier -ArgumentList $id',
  "        $sec.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule -ArgumentList $who, 'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow'))",
  '      }',
  '      try { Set-Acl -LiteralPath $dir -AclObject $sec } catch { $null = $failed.Add($dir); continue }',
  '    }',
  '    try { $subs = @((New-Object System.IO.DirectoryInfo -ArgumentList $dir).GetDirectories()) } catch { $null = $failed.Add($dir); continue }',
  '    foreach ($s in $subs) {',
  '      if (($s.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -eq 0) { $todo.Push($s.FullName) }',
  '    }',
  '  }',
  '  ,@($failed)',
  '}',
];

/** The purge body. */
export const PURGE_BODY: readonly string[] = [
  ...PURGE_FUNCTIONS.map((l) => `  ${l}`),
  "  if ($Sid -notmatch '^S-1-5-21-\\d+-\\d+-\\d+-\\d+$') { Out-JitResult ([ordered]@{ ok = $false; code = 'COMMAND_FAILED'; message = 'not a local account SID' }); return }",
  '  $again = $null',
  "  try { $again = Get-LocalUser -SID $Sid } catch { if (-not ((Test-JitError $_ 'UserNotFound') -or (Test-JitError $_ 'PrincipalNotFound'))) { throw } }",
  '  if ($null -ne $again) { Out-JitResult ([ordered]@{ ok = $true; skipped = $true }); return }',
  // The saved name may belong to a new account by now: then it names nothing of ours.
  '  $nameTaken = $null -ne (Find-JitUser $Name)',
  '  $errors = New-Object System.Collections.ArrayList',
  '  $denied = $false',
  // --- the profile
  "  $listKey = 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList'",
  "  $profilesDir = [System.IO.Path]::GetFullPath([Environment]::ExpandEnvironmentVariables([string](Get-ItemProperty -LiteralPath $listKey).ProfilesDirectory)).TrimEnd('\\')",
  "  $keys = @(($listKey + '\\' + $Sid), ($listKey + '\\' + $Sid + '.bak'))",
  '  $all = @(Get-CimInstance -ClassName Win32_UserProfile)',
  '  $mine = @($all | Where-Object { [string]$_.SID -eq $Sid })',
  "  if (@($mine | Where-Object { $_.Loaded }).Count -gt 0) { Out-JitResult ([ordered]@{ ok = $false; code = 'LOGGED_IN'; message = 'the profile is loaded' }); return }",
  "  if (@($mine | Where-Object { $_.Special }).Count -gt 0) { Out-JitResult ([ordered]@{ ok = $false; code = 'COMMAND_FAILED'; message = 'a special profile' }); return }",
  '  $paths = @($mine | ForEach-Object { [string]$_.LocalPath })',
  '  foreach ($k in $keys) { if (Test-Path -LiteralPath $k) { $paths += [string](Get-ItemProperty -LiteralPath $k).ProfileImagePath } }',
  // Instance and key both gone (an earlier purge stopped half way): the folder by its usual name.
  '  if ($paths.Count -eq 0 -and -not $nameTaken) { $paths += (Join-Path $profilesDir $Name) }',
  "  $others = @($all | Where-Object { [string]$_.SID -ne $Sid } | ForEach-Object { ([string]$_.LocalPath).TrimEnd('\\') })",
  "  $paths = @($paths | Where-Object { $_ } | ForEach-Object { [System.IO.Path]::GetFullPath([Environment]::ExpandEnvironmentVariables($_)).TrimEnd('\\') } | Sort-Object -Unique)",
  '  foreach ($path in $paths) {',
  '    $parent = [System.IO.Path]::GetDirectoryName($path)',
  '    $bad = (-not [string]::Equals($parent, $profilesDir, [System.StringComparison]::OrdinalIgnoreCase)) -or ($others -contains $path)',
  '    if (-not $bad -and [System.IO.Directory]::Exists($path)) { $bad = ([System.IO.File]::GetAttributes($path) -band [System.IO.FileAttributes]::ReparsePoint) -ne 0 }',
  "    if ($bad) { Out-JitResult ([ordered]@{ ok = $false; code = 'COMMAND_FAILED'; message = 'refusing the profile folder ' + $path + ': not a plain folder of its own under ' + $profilesDir }); return }",
  '  }',
  '  foreach ($path in $paths) {',
  "    if ([System.IO.Directory]::Exists($path)) { foreach ($f in @(Reset-JitProfileAcl $path)) { $null = $errors.Add('could not take over ' + $f) } }",
  '  }',
  '  foreach ($p in $mine) {',
  '    try { Remove-CimInstance -InputObject $p -Confirm:$false } catch {',
  "      $null = $errors.Add('Remove-CimInstance: ' + (Get-JitErrorRecord $_).Exception.Message)",
  '      if (Test-JitAccessDenied $_) { $denied = $true }',
  '    }',
  '  }',
  '  if (@(Get-CimInstance -ClassName Win32_UserProfile | Where-Object { [string]$_.SID -eq $Sid }).Count -eq 0) {',
  '    foreach ($path in $paths) {',
  '      if ([System.IO.Directory]::Exists($path)) {',
  '        try { [System.IO.Directory]::Delete($path, $true) } catch {',
  "          $null = $errors.Add('deleting ' + $path + ': ' + (Get-JitErrorRecord $_).Exception.Message)",
  '          if (Test-JitAccessDenied $_) { $denied = $true }',
  '        }',
  '      }',
  '    }',
  '    foreach ($k in $keys) {',
  "      if (Test-Path -LiteralPath $k) { try { Remove-Item -LiteralPath $k -Recurse -Force -Confirm:$false } catch { $null = $errors.Add('deleting ' + $k + ': ' + (Get-JitErrorRecord $_).Exception.Message) } }",
  '    }',
  '  }',
  // --- scheduled tasks run as the account
  '  $ids = @($Sid)',
  "  if (-not $nameTaken) { $ids += $Name; $ids += ($env:COMPUTERNAME + '\\' + $Name) }",
  '  $tasks = @(Get-ScheduledTask | Where-Object { $ids -contains [string]$_.Principal.UserId })',
  '  foreach ($t in $tasks) {',
  "    try { $t | Unregister-ScheduledTask -Confirm:$false } catch { $null = $errors.Add('task ' + $t.TaskPath + $t.TaskName + ': ' + (Get-JitErrorRecord $_).Exception.Message) }",
  '  }',
  // --- what is left
  '  $left = New-Object System.Collections.ArrayList',
  "  if (@(Get-CimInstance -ClassName Win32_UserProfile | Where-Object { [string]$_.SID -eq $Sid }).Count -gt 0) { $null = $left.Add('profile') }",
  "  foreach ($path in $paths) { if ([System.IO.Directory]::Exists($path)) { $null = $left.Add('folder ' + $path) } }",
  "  foreach ($k in $keys) { if (Test-Path -LiteralPath $k) { $null = $left.Add('ProfileList key ' + (Split-Path -Leaf $k)) } }",
  '  $tasksLeft = @(Get-ScheduledTask | Where-Object { $ids -contains [string]$_.Principal.UserId }).Count',
  "  if ($tasksLeft -gt 0) { $null = $left.Add([string]$tasksLeft + ' scheduled task(s)') }",
  '  if ($left.Count -gt 0) {',
  "    $code = 'COMMAND_FAILED'",
  "    if ($denied) { $code = 'ACCESS_DENIED' }",
  "    Out-JitResult ([ordered]@{ ok = $false; code = $code; message = 'left: ' + ($left -join '; ') + ' (' + ($errors -join '; ') + ')' })",
  '    return',
  '  }',
  '  Out-JitResult ([ordered]@{ ok = $true; skipped = $false; tasks = $tasks.Count })',
];
