import type { Group } from '../../protocol/groups.ts';

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
  /** Returns null when no account of that name exists. */
  lookup(name: string): Promise<AccountInfo | null>;
  /**
   * Creates the account disabled, with the ownership marker, in `spec.group`,
   * with `password` set (passed on stdin, never on a command line).
   * Throws `ALREADY_EXISTS` if the name is taken.
   */
  createDisabled(spec: CreateAccountSpec, password: string): Promise<AccountInfo>;
  /** Makes the account's groups exactly `[group]` (plus the ownership marker). */
  setGroups(name: string, group: Group): Promise<void>;
  /** Enables (and re-sets the OS expiry to `expiresAt`) or disables the account. */
  setEnabled(name: string, enabled: boolean, expiresAt?: Date): Promise<void>;
  /** Sets a new password (stdin only). */
  setPassword(name: string, password: string): Promise<void>;
  /** Ends every session and process of the account. */
  logoff(name: string): Promise<LogoffResult>;
  /** Deletes the account and its home/profile. Missing account = success. */
  delete(name: string): Promise<void>;
  /** Every account that carries our ownership marker. */
  listManaged(): Promise<AccountInfo[]>;
}

/** Stable codes for backend failures, mapped from each OS's exit codes. */
export const ACCOUNT_ERROR_CODES = [
  'ALREADY_EXISTS',
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
