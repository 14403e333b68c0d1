import { AccountError } from './backend.ts';

/**
 * The logoff operation's PowerShell (one pass; windows.ts repeats it until nothing is left).
 * Constant text, put together with the other operations by windows-scripts.ts.
 *
 * WHY WTS AND NOT quser/logoff.exe. quser.exe and logoff.exe are missing on Home editions, and
 * logoff "can't log off a user from the console session" (notes §1.4 [W5]); either left the
 * session alive and the delete retrying forever. The Remote Desktop Services API works on every
 * edition and for every session, the console included: WTSEnumerateSessions lists the
 * sessions, WTSQuerySessionInformation (WTSUserName = 5, WTSDomainName = 7) names each one's
 * user, and WTSLogoffSession(WTS_CURRENT_SERVER_HANDLE, id, bWait = TRUE) logs it off and
 * waits until it is done. A local account's domain is the computer's NetBIOS name,
 * $env:COMPUTERNAME.
 *
 * The C# below is constant (no value is ever pasted into it), ASCII, without single quotes (so
 * each line is a plain '...' literal) and without blank lines (TRANSPORT, windows-scripts.ts).
 * Add-Type compiles it only when [JitAccess.Wts] is not loaded yet: once per PowerShell
 * session. (Changing the C# therefore needs a new type name or a new session; the agent starts
 * a new session when it starts.) It uses nothing beyond `System` and interop, so it compiles
 * under Windows PowerShell 5.1 (.NET Framework) and PowerShell 7 alike.
 *
 * Then every process whose owner SID is the account's is terminated (Win32_Process
 * GetOwnerSid, Terminate): processes run outside any session too (runas, scheduled tasks),
 * and a session's logoff may leave stragglers. Finally the pass reports what is still there,
 * sessions by id with the WTSLogoffSession error, and processes by count.
 */

/** [JitAccess.Wts]: P/Invoke into wtsapi32.dll. */
export const WTS_SOURCE: readonly string[] = [
  'using System;',
  'using System.Runtime.InteropServices;',
  'namespace JitAccess {',
  '  public static class Wts {',
  '    [StructLayout(LayoutKind.Sequential)]',
  '    private struct WTS_SESSION_INFO {',
  '      public int SessionId;',
  '      public IntPtr pWinStationName;',
  '      public int State;',
  '    }',
  '    [DllImport("wtsapi32.dll", CharSet = CharSet.Unicode, ExactSpelling = true, SetLastError = true)]',
  '    private static extern bool WTSEnumerateSessionsW(IntPtr server, int reserved, int version, out IntPtr sessions, out int count);',
  '    [DllImport("wtsapi32.dll", CharSet = CharSet.Unicode, ExactSpelling = true, SetLastError = true)]',
  '    private static extern bool WTSQuerySessionInformationW(IntPtr server, int sessionId, int infoClass, out IntPtr buffer, out int bytes);',
  '    [DllImport("wtsapi32.dll", ExactSpelling = true)]',
  '    private static extern void WTSFreeMemory(IntPtr memory);',
  '    [DllImport("wtsapi32.dll", ExactSpelling = true, SetLastError = true)]',
  '    private static extern bool WTSLogoffSession(IntPtr server, int sessionId, bool wait);',
  '    public static int[] SessionIds() {',
  '      IntPtr sessions;',
  '      int count;',
  '      if (!WTSEnumerateSessionsW(IntPtr.Zero, 0, 1, out sessions, out count)) {',
  '        throw new InvalidOperationException("WTSEnumerateSessions failed: error " + Marshal.GetLastWin32Error());',
  '      }',
  '      try {',
  '        int size = Marshal.SizeOf(typeof(WTS_SESSION_INFO));',
  '        int[] ids = new int[count];',
  '        for (int i = 0; i < count; i++) {',
  '          IntPtr item = new IntPtr(sessions.ToInt64() + (long)i * size);',
  '          ids[i] = ((WTS_SESSION_INFO)Marshal.PtrToStructure(item, typeof(WTS_SESSION_INFO))).SessionId;',
  '        }',
  '        return ids;',
  '      } finally {',
  '        WTSFreeMemory(sessions);',
  '      }',
  '    }',
  '    public static string Query(int sessionId, int infoClass) {',
  '      IntPtr buffer;',
  '      int bytes;',
  '      if (!WTSQuerySessionInformationW(IntPtr.Zero, sessionId, infoClass, out buffer, out bytes)) {',
  '        return null;',
  '      }',
  '      try {',
  '        return Marshal.PtrToStringUni(buffer);',
  '      } finally {',
  '        WTSFreeMemory(buffer);',
  '      }',
  '    }',
  '    public static int Logoff(int sessionId) {',
  '      if (WTSLogoffSession(IntPtr.Zero, sessionId, true)) {',
  '        return 0;',
  '      }',
  '      return Marshal.GetLastWin32Error();',
  '    }',
  '  }',
  '}',
];

for (const line of WTS_SOURCE) {
  if (!/^[\x20-\x7E]+$/.test(line) || line.includes("'")) throw new Error(`WTS_SOURCE: unfit line ${line}`);
}

/**
 * One logoff pass over the account in `$u` (SID string in `$sid`; `$SessionDomain` its domain, the
 * computer's when unset): leaves `$sessions` and
 * `$processes` (how many it ended), `$left` (sessions still there, by id, with
 * WTSLogoffSession's error) and `$processesLeft`. Used by the session's logoff operation and by
 * the backstop helper (windows-backstop.ts), which runs without the agent.
 */
export const LOGOFF_PASS: readonly string[] = [
  '  if ($null -eq (\'JitAccess.Wts\' -as [type])) {',
  '    $source = @(',
  ...WTS_SOURCE.map((l) => `'${l}'`),
  '    )',
    // -IgnoreWarnings: Add-Type otherwise fails on a compiler warning, and compilers differ
    // (csc under 5.1, Roslyn under 7); windows-wts.test.ts compiles it warning-free with mcs.
    '    Add-Type -TypeDefinition ($source -join [Environment]::NewLine) -IgnoreWarnings',
  '  }',
  // The session's domain: the computer's for a local account (every caller but an elevated
  // domain account's logoff, which sets $SessionDomain to the account's domain).
  '  if ([string]::IsNullOrEmpty($SessionDomain)) { $SessionDomain = $env:COMPUTERNAME }',
  // WTSUserName = 5, WTSDomainName = 7 (WTS_INFO_CLASS). -eq compares case-insensitively.
  '  function Test-JitSession([int]$Id) {',
  '    ([JitAccess.Wts]::Query($Id, 5) -eq [string]$u.Name) -and ([JitAccess.Wts]::Query($Id, 7) -eq $SessionDomain)',
  '  }',
  // Why GetOwnerSid rather than GetOwner: one exact comparison with the account's SID instead
  // of user and domain names (the domain part would be compared with the NetBIOS name).
  '  function Get-JitProcesses {',
  '    foreach ($p in @(Get-CimInstance -ClassName Win32_Process)) {',
  '      try {',
  '        $o = Invoke-CimMethod -InputObject $p -MethodName GetOwnerSid',
  '        if ($o.ReturnValue -eq 0 -and [string]$o.Sid -eq $sid) { $p }',
  // A process that ended between the listing and the call: nothing left to do.
  '      } catch { }',
  '    }',
  '  }',
  '  $sessions = 0',
  '  $processes = 0',
  '  $errors = @{}',
  '  foreach ($id in @([JitAccess.Wts]::SessionIds())) {',
  '    if (Test-JitSession $id) {',
  '      $err = [JitAccess.Wts]::Logoff($id)',
  '      if ($err -eq 0) { $sessions++ } else { $errors[[int]$id] = $err }',
  '    }',
  '  }',
  '  foreach ($p in @(Get-JitProcesses)) {',
  '    try {',
  '      $k = Invoke-CimMethod -InputObject $p -MethodName Terminate',
  '      if ($k.ReturnValue -eq 0) { $processes++ }',
  '    } catch { }',
  '  }',
  '  $left = @(foreach ($id in @([JitAccess.Wts]::SessionIds())) { if (Test-JitSession $id) { [ordered]@{ id = [int]$id; error = [int]$errors[[int]$id] } } })',
  '  $processesLeft = @(Get-JitProcesses).Count',
];

/**
 * The helpers' logoff (windows-backstop.ts, windows-restore.ts; the agent is not running then):
 * LOGOFF_PASS until nothing is left, passes 1 s, 2 s, 4 s, 8 s apart as the agent's logoff
 * (the tasks' ExecutionTimeLimit is 5 minutes); a failure goes into $errors. Indented by `indent`.
 */
export function logoffPasses(indent: string): string[] {
  return [
    'try {',
    '  $pass = 0',
    '  do {',
    '    if ($pass -gt 0) { Start-Sleep -Seconds ([int][Math]::Pow(2, $pass - 1)) }',
    '    $pass++',
    ...LOGOFF_PASS.map((l) => `  ${l}`),
    '  } while ((@($left).Count -gt 0 -or $processesLeft -gt 0) -and $pass -lt 5)',
    "} catch { $null = $errors.Add('logoff: ' + (Get-JitErrorRecord $_).Exception.Message) }",
  ].map((l) => `${indent}${l}`);
}

/** The logoff body (reads $Name from the prelude; functions from COMMON). */
export const LOGOFF_BODY: readonly string[] = [
  '  $u = Get-JitManagedUser $Name',
  '  if ($null -eq $u) { return }',
  '  $sid = [string]$u.SID',
  ...LOGOFF_PASS,
  '  Out-JitResult ([ordered]@{ ok = $true; sessions = $sessions; processes = $processes; sessionsLeft = $left; processesLeft = $processesLeft })',
];

/** What one logoff pass answers (windows-result.ts LogoffPass). */
export interface LogoffPassResult {
  sessions: number;
  processes: number;
  sessionsLeft: { id: number; error: number }[];
  processesLeft: number;
}

/**
 * Runs logoff passes, waiting `delays[i]` between them, until no session or process is left;
 * returns how many were ended, or throws COMMAND_FAILED naming what is left after the last one.
 */
export async function logoffUntilDone(name: string, pass: () => Promise<LogoffPassResult>, delays: number[], sleep: (ms: number) => Promise<void>): Promise<number> {
  let ended = 0;
  for (let attempt = 0; ; attempt++) {
    const r = await pass();
    ended += r.sessions + r.processes;
    if (r.sessionsLeft.length === 0 && r.processesLeft === 0) return ended;
    const delay = delays[attempt];
    if (delay === undefined) {
      const sessions = r.sessionsLeft.map((s) => `session ${s.id}${s.error ? ` (WTSLogoffSession error ${s.error})` : ''}`);
      const processes = r.processesLeft ? [`${r.processesLeft} process(es) still running`] : [];
      throw new AccountError('COMMAND_FAILED', `${name}: could not be logged off: ${[...sessions, ...processes].join(', ')}`);
    }
    await sleep(delay);
  }
}
