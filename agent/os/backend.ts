import type { Group } from '../../protocol/groups.ts';
import type { ElevationBackend } from './elevation.ts';

/**
 * What the OS tells us about one local account.
 * `managed` is true only when the account carries our ownership marker.
 */
export interface AccountInfo {
  name: string;
  /** uid on Unix, SID on Windows. */
  id: string;
  enabled: boolean;
  managed: boolean;
  /** Wizard groups the account is a member of. */
  groups: Group[];
}

/** Everything needed to create an account; the password is passed separately. */
export interface CreateAccountSpec {
  name: string;
  group: Group;
  /** Grant id, written into the ownership tag (description / GECOS). */
  grantId: string;
  /** Access end: set as the OS-level account expiry, a backstop if the agent dies. */
  expiresAt: Date;
  /**
   * Unix: the numeric uid (and gid of the account's own group) to use, from `uidRange`.
   * The policy layer hands out each number once, so no account ever inherits what an
   * earlier one left behind. Backends without `uidRange` ignore it.
   */
  uid?: number;
}

/** A deleted account as the agent saved it at creation: enough to find what it left behind. */
export interface AccountRef {
  name: string;
  /** uid on Unix, SID on Windows. */
  id: string;
}

/** Result of a log-off: how many processes or sessions were ended. */
export interface LogoffResult {
  ended: number;
}

/**
 * One operating system's account primitives. No policy lives here: the policy
 * layer (agent/accounts.ts) decides what to call and when.
 *
 * Every method is idempotent where the OS allows it, and every mutating method
 * except `create` refuses (throws `AccountError` with code `NOT_MANAGED`) an
 * account that lacks our ownership marker.
 */
export interface AccountBackend {
  /** Short OS name, e.g. "linux". */
  readonly os: string;
  /**
   * Unix: the uids this backend gives its accounts (`CreateAccountSpec.uid`), far from any the
   * OS or a directory service hands out. Null where the OS picks the id itself (Windows SIDs are
   * never reused).
   */
  readonly uidRange: { min: number; max: number } | null;
  /** elevate-account and the rogue-admin guard (elevation.ts); absent where not built yet. */
  readonly elevation?: ElevationBackend;
  /** Returns null when no account of that name exists. */
  lookup(name: string): Promise<AccountInfo | null>;
  /**
   * Creates the account disabled, with the ownership marker, in `spec.group`,
   * with `password` set (passed on stdin, never on a command line).
   * Throws `ALREADY_EXISTS` if the name is taken, `ID_TAKEN` if `spec.uid` is.
   * A crash at any point must leave nothing usable and nothing unmarked.
   */
  createDisabled(spec: CreateAccountSpec, password: string): Promise<AccountInfo>;
  /** Makes the account's groups exactly `[group]` (plus the ownership marker). */
  setGroups(name: string, group: Group): Promise<void>;
  /** Enables the account, with the OS-level expiry at `expiresAt` (a backstop if the agent dies). */
  enable(name: string, expiresAt: Date): Promise<void>;
  /**
   * Makes the account dead: no new logon of any kind, and no privilege it could use.
   * Linux `usermod -L -e 1`; Windows `Disable-LocalUser` and `AccountExpires` now; macOS
   * `pwpolicy -disableuser` and out of `admin`. The first step of every removal, so a failed
   * logoff or delete that is retried leaves nothing usable. Missing account = success.
   */
  disable(name: string): Promise<void>;
  /**
   * Registers an OS-level timer that disables the account and logs it off at `at`, even if the
   * agent is not running then (crashed, hung, killed). Linux: a systemd timer; Windows: a
   * scheduled task running as SYSTEM; macOS: a launchd daemon job. Called at enable; arming
   * again replaces the timer. What it runs checks that the account is still ours (same name and
   * uid/SID) before touching it, and touches nothing else. Returns 'timer' when armed, or
   * 'expiry-only' where the OS has no scheduler to use (then only the account expiry set at
   * enable stands).
   */
  armBackstop(name: string, at: Date): Promise<'timer' | 'expiry-only'>;
  /** Whether an armed timer outlives a reboot; if not, the agent arms its grants' timers again at start. */
  readonly backstopSurvivesReboot: boolean;
  /** Removes the account's timer (the agent ended the grant itself). Missing = success. */
  disarmBackstop(name: string): Promise<void>;
  /** Sets a new password (stdin only). */
  setPassword(name: string, password: string): Promise<void>;
  /** Ends every session and process of the account. */
  logoff(name: string): Promise<LogoffResult>;
  /** Deletes the account (and its home/profile where the OS does both at once). Missing account = success. */
  delete(name: string): Promise<void>;
  /**
   * After `delete`: removes what the account left behind, found by its saved id — home or
   * profile folder, files it owned in the shared temporary folders, scheduled jobs, IPC
   * objects, cached sudo/authorisation tickets (what each OS can). Idempotent; throws while
   * anything is left, so the caller retries. Touches nothing if an account with that id
   * exists again (it is then not ours).
   */
  purge(account: AccountRef): Promise<void>;
  /** Every account that carries our ownership marker. */
  listManaged(): Promise<AccountInfo[]>;
  /**
   * Uninstall: removes the ownership-marker group (where the OS has one) once no account is in
   * it. Throws `COMMAND_FAILED` while it still has members.
   */
  dropMarker(): Promise<void>;
}

/**
 * Unix uids for our accounts: above every range a Unix system or directory service hands out
 * by default (login.defs 1000–60000, systemd's dynamic users up to 65519, subordinate ids from
 * 100000, SSSD's idmap up to 2000200000) and below 2^31, which some tools treat as signed.
 */
export const TEMP_UID_RANGE = { min: 2_001_000_000, max: 2_099_999_999 } as const;

/** Stable codes for backend failures, mapped from each OS's exit codes. */
export const ACCOUNT_ERROR_CODES = [
  'ALREADY_EXISTS',
  'ID_TAKEN',
  'NOT_FOUND',
  'NOT_MANAGED',
  'LOGGED_IN',
  'ACCESS_DENIED',
  'INVALID_NAME',
  'UNSUPPORTED_GROUP',
  'COMMAND_FAILED',
] as const;
export type AccountErrorCode = (typeof ACCOUNT_ERROR_CODES)[number];

export class AccountError extends Error {
  constructor(
    readonly code: AccountErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AccountError';
  }
}

/** Names valid on Windows, macOS and Linux alike (shared notes §0). */
export const ACCOUNT_NAME = /^[a-z][a-z0-9_-]{0,19}$/;

export function assertValidName(name: string): void {
  if (!ACCOUNT_NAME.test(name)) throw new AccountError('INVALID_NAME', `invalid account name ${JSON.stringify(name)}`);
}

/**
 * The common end of every backend's createDisabled: set the password, or delete
 * the half-made account (one we could not give a password is useless), then
 * check that it really is managed and disabled.
 */
export async function finishCreate(b: AccountBackend, name: string, setPassword: () => Promise<void>): Promise<AccountInfo> {
  try {
    await setPassword();
  } catch (e) {
    await b.delete(name).catch(() => {});
    throw e;
  }
  const info = await b.lookup(name);
  if (!info?.managed || info.enabled) throw new AccountError('COMMAND_FAILED', `${name} not created disabled and managed`);
  return info;
}

// ---------------------------------------------------------------------------------------------
// Ownership marker
// ---------------------------------------------------------------------------------------------

/**
 * Start of the ownership tag every account we create carries (GECOS on Linux, RealName on
 * macOS, the description on Windows): `jit-access grant=<grant id>`.
 */
export const OWNERSHIP_TAG_PREFIX = 'jit-access grant=';
/** Group (Linux, macOS) that, together with the tag, marks an account as ours. */
export const MARKER_GROUP = 'jit-managed';
/** Grant ids fit for the Unix tag (GECOS / RealName). */
export const GRANT_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The ownership tag for a grant. */
export function ownershipTag(grantId: string): string {
  return `${OWNERSHIP_TAG_PREFIX}${grantId}`;
}

/** Whether a GECOS / RealName value is exactly one of our tags (prefix plus a GRANT_ID). */
export function isOwnershipTag(value: string): boolean {
  return value.startsWith(OWNERSHIP_TAG_PREFIX) && GRANT_ID.test(value.slice(OWNERSHIP_TAG_PREFIX.length));
}

export function notManaged(name: string): AccountError {
  return new AccountError('NOT_MANAGED', `${name} lacks the jit-access marker`);
}

/** The account's info; throws NOT_FOUND when missing, NOT_MANAGED without our marker. */
export async function requireManaged(b: AccountBackend, name: string): Promise<AccountInfo> {
  const info = await b.lookup(name);
  if (!info) throw new AccountError('NOT_FOUND', `no account ${name}`);
  if (!info.managed) throw notManaged(name);
  return info;
}
