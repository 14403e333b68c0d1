/**
 * Reading what a Windows script printed (windows-scripts.ts, OUTPUT): the one `jit-result`
 * line, `ok:false` records turned into AccountErrors (mapPsError), and list shapes as Windows
 * PowerShell 5.1's ConvertTo-Json writes them.
 */
import { z } from 'zod';
import { ACCOUNT_ERROR_CODES, AccountError, type AccountErrorCode } from './backend.ts';
import { RESULT_PREFIX } from './windows-common.ts';
import { firstLine, type PsResult } from './windows-exec.ts';

/**
 * A list as Windows PowerShell 5.1's ConvertTo-Json may write it: an array, null for an empty
 * pipeline, a bare item for a one-item pipeline, or {"value":[…],"Count":n} for an array that
 * went through the pipeline wrapped in a PSObject.
 */
export const psList = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => {
    if (v === null || v === undefined) return [];
    if (Array.isArray(v)) return v;
    if (typeof v === 'object' && Array.isArray((v as { value?: unknown }).value)) return (v as { value: unknown[] }).value;
    return [v];
  }, z.array(item));

/** The error record a script's catch block prints. */
export const PsErrorInfo = z.object({
  type: z.string().nullish(),
  fqid: z.string().nullish(),
  category: z.string().nullish(),
  message: z.string().nullish(),
  hresult: z.number().nullish(),
  native: z.string().nullish(),
});
export type PsErrorInfo = z.infer<typeof PsErrorInfo>;

const Failure = z.object({
  ok: z.literal(false),
  code: z.enum(ACCOUNT_ERROR_CODES).optional(),
  message: z.string().optional(),
  error: PsErrorInfo.optional(),
});

// HRESULTs seen as numbers (signed 32-bit, as [int]$e.HResult prints them).
const E_ACCESSDENIED = 0x80070005 | 0; // Win32 ERROR_ACCESS_DENIED
const WBEM_E_ACCESS_DENIED = 0x80041003 | 0;
const E_SHARING_VIOLATION = 0x80070020 | 0; // ERROR_SHARING_VIOLATION: a file of the profile is open
const E_BUSY = 0x800700aa | 0; // ERROR_BUSY

/**
 * Maps a PowerShell error record to an AccountError code. Types and error ids are
 * language-neutral (FullyQualifiedErrorId is "<ErrorId>,<command type>", ErrorId being the
 * LocalAccounts exception type name without "Exception"); messages are localized, so they are
 * only a last resort, for the "in use" failures that have no id of their own.
 */
export function mapPsError(e: PsErrorInfo): AccountErrorCode {
  const type = (e.type ?? '').split('.').pop() ?? '';
  const id = (e.fqid ?? '').split(',')[0] ?? '';
  const is = (...names: string[]) => names.some((n) => type === `${n}Exception` || id === n);
  if (is('UserExists', 'NameInUse', 'GroupExists')) return 'ALREADY_EXISTS';
  if (is('UserNotFound', 'PrincipalNotFound')) return 'NOT_FOUND';
  if (is('GroupNotFound')) return 'UNSUPPORTED_GROUP';
  if (is('InvalidName')) return 'INVALID_NAME';
  if (
    is('AccessDenied', 'UnauthorizedAccess') ||
    e.category === 'PermissionDenied' ||
    e.native === 'AccessDenied' ||
    e.hresult === E_ACCESSDENIED ||
    e.hresult === WBEM_E_ACCESS_DENIED
  ) {
    return 'ACCESS_DENIED';
  }
  if (e.hresult === E_SHARING_VIOLATION || e.hresult === E_BUSY || /logged (on|in)|in use|being used by another process/i.test(e.message ?? '')) {
    return 'LOGGED_IN';
  }
  return 'COMMAND_FAILED';
}

/** The last `jit-result` line's JSON, or undefined when the script printed none. */
export function resultJson(stdout: string): unknown {
  const line = stdout
    .split(/\r?\n/)
    .reverse()
    .find((l) => l.startsWith(RESULT_PREFIX));
  if (line === undefined) return undefined;
  try {
    return JSON.parse(line.slice(RESULT_PREFIX.length));
  } catch {
    throw new AccountError('COMMAND_FAILED', 'PowerShell printed a result that is not JSON');
  }
}

/** Parses a script's result with `schema`, turning `ok:false` into the matching AccountError. */
export function parseResult<T extends z.ZodType>(what: string, r: PsResult, schema: T): z.infer<T> {
  const json = resultJson(r.stdout);
  if (json === undefined) {
    throw new AccountError('COMMAND_FAILED', `${what}: no result from PowerShell${r.stderr ? `: ${firstLine(r.stderr)}` : ''}`);
  }
  const failure = Failure.safeParse(json);
  if (failure.success) {
    const f = failure.data;
    if (f.code) throw new AccountError(f.code, `${what}: ${f.message ?? f.code}`);
    const e = f.error ?? {};
    throw new AccountError(mapPsError(e), `${what}: ${e.fqid ?? e.type ?? 'error'}: ${firstLine(e.message ?? '')}`);
  }
  const ok = schema.safeParse(json);
  if (!ok.success) throw new AccountError('COMMAND_FAILED', `${what}: unexpected result from PowerShell`);
  return ok.data;
}

// ---------------------------------------------------------------------------------------------
// What each session operation of windows.ts prints
// ---------------------------------------------------------------------------------------------

export const PsUser = z.object({
  name: z.string(),
  sid: z.string().regex(/^S-1-\d+(-\d+)+$/),
  enabled: z.boolean(),
  description: z.string(),
  groups: psList(z.string()),
});
export type PsUser = z.infer<typeof PsUser>;

export const LookupResult = z.object({ ok: z.literal(true), user: PsUser.nullable() });
export const UserResult = z.object({ ok: z.literal(true), user: PsUser });
export const ListResult = z.object({ ok: z.literal(true), users: psList(PsUser) });
export const OkResult = z.object({ ok: z.literal(true) });
export const EnabledResult = z.object({ ok: z.literal(true), enabled: z.boolean() });
export const DisableResult = z.union([
  z.object({ ok: z.literal(true), exists: z.literal(false) }),
  z.object({ ok: z.literal(true), exists: z.literal(true), enabled: z.boolean(), expiresMs: z.number().nullable(), nowMs: z.number() }),
]);
export const LogoffPass = z.object({
  ok: z.literal(true),
  sessions: z.number(),
  processes: z.number(),
  /** Sessions of the account still there after the pass, with WTSLogoffSession's error (0: it said yes). */
  sessionsLeft: psList(z.object({ id: z.number(), error: z.number() })),
  processesLeft: z.number(),
});
export const DeleteResult = z.object({ ok: z.literal(true), deleted: z.boolean() });
export const PurgeResult = z.object({ ok: z.literal(true), skipped: z.boolean() });
export const InstallResult = z.object({ ok: z.literal(true), path: z.string(), sha256: z.string() });
