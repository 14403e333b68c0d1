/**
 * The stored records. The database is the truth: every timer (Agenda job,
 * agent timer) can be rebuilt from these documents.
 *
 * Hot paths (polls, reports, enrollment, grant transitions) filter on `_id`
 * alone. Why: the embedded FerretDB's SQLite backend uses an index for that
 * filter only and scans the whole collection for any other; on MongoDB the
 * indexes below serve the rest.
 */
import type { RequestDoc, RequestRulesDoc } from './requests.ts';
import type { Collection, Db } from 'mongodb';
import type { Group, OperatingSystem } from '../../protocol/groups.ts';
import type { InstructionKind, LocalAccount, Operation, Plan } from '../../protocol/messages.ts';
import type { GrantState } from '../domain/lifecycle.ts';

export interface GrantDoc {
  _id: string;
  /** Grants made by one wizard submission (several endpoints) share it. */
  requestId: string;
  /** The access request whose approval made this grant (server/commands/decideRequest.ts). */
  accessRequestId?: string;
  operation: Operation;
  /** elevate-account: the existing account on the endpoint, as given. */
  account?: string;
  /** elevate-account: what happens to the account's sessions at the end (logoff when absent). */
  endAction?: Plan['endAction'];
  /** Administrators on Linux/macOS: sudo without a password for the window. */
  passwordlessSudo?: boolean;
  /** elevate-account: warnings before the end, in seconds before it (config `elevation.endWarningsSeconds` at create). */
  endWarnings?: number[];
  /** elevate-account: the baseline the agent reported at enable (was the account a member before?). */
  wasMember?: boolean;
  /** The rogue-admin guard's policy, fixed when the grant is made (server config `elevation`). */
  guard?: Plan['guard'];
  /** As typed, for display. */
  email: string;
  /** `emailKey(email)`, what searches match. Set on every grant; records from before it get it at start (`migrate`). */
  emailKey?: string;
  endpointId: string;
  hostname: string;
  group: Group;
  startAt: Date;
  enableAt: Date;
  endAt: Date;
  serverSideSmtp: boolean;
  state: GrantState;
  reason?: string;
  /** The random account name, once the agent reports it. Never a password. */
  username?: string;
  revokeRequested: boolean;
  /** Where the credentials email stands. */
  delivery: Delivery;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface Delivery {
  status: 'pending' | 'sent' | 'failed' | 'not-sent';
  attempts: number;
  lastError?: string;
  sentAt?: Date;
}

/**
 * SMTP settings: `server` (server-side SMTP), `default` (the Agent Settings
 * policy) or `endpoint:<id>` (an endpoint's override). The password is stored
 * only as an AES-256-GCM box whose key lives outside the database.
 */
export interface SmtpPolicyDoc {
  _id: string;
  host: string;
  port: number;
  security: 'starttls' | 'tls' | 'none';
  username?: string;
  passwordBox?: string;
  from: string;
  /** Shown in the emails and the default sender name, so they do not look like phishing. */
  organisation?: string;
  timeZone: string;
  tlsCa?: string;
  updatedBy: string;
  updatedAt: Date;
}

export interface EndpointDoc {
  _id: string;
  hostname: string;
  os: OperatingSystem;
  agentVersion: string;
  /** sha256 of the agent's secret; the secret itself is never stored. */
  credentialHash: string;
  /** The machine's identity as its agent sent it (a sha256, hex), if it did; see commands/enrollment.ts. */
  machineId?: string;
  enrolledAt: Date;
  /** When the same machine last enrolled again, replacing this record's credential. */
  reenrolledAt?: Date;
  lastSeenAt: Date;
  /** The agent's inventory: its local accounts (for the wizard and the checks) and what it can do. */
  accounts?: LocalAccount[];
  capabilities?: string[];
  inventoryAt?: Date;
  /** Set by admins (commands/endpointTags.ts), lower-cased; request rules match them (domain/rules.ts). */
  tags?: string[];
}

/** An unused enrollment token; deleted when an agent enrolls with it (see commands/enrollment.ts). */
export interface EnrollmentTokenDoc {
  /** sha256 of the one-time token. */
  _id: string;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date;
}

export interface InstructionDoc {
  _id: string;
  endpointId: string;
  grantId: string;
  kind: InstructionKind;
  plan: Plan;
  createdAt: Date;
  ackedAt: Date | null;
}

export interface AuditDoc {
  _id: string;
  at: Date;
  /** Orders events; see store/audit.ts. */
  seq: number;
  /** "admin" (the config token), "user:<email>", "agent:<endpointId>" or "system". */
  actor: string;
  type: string;
  grantId?: string;
  endpointId?: string;
  /** An access request's events (server/commands/requests.ts). */
  requestId?: string;
  detail: Record<string, unknown>;
  /** `emailKey(detail.email)` when the event names an email, what searches match (see store/audit.ts). */
  emailKey?: string;
}

/** Report ids already applied, so a re-sent report changes nothing. */
export interface SeenReportDoc {
  _id: string;
  endpointId: string;
  receivedAt: Date;
}

/** Console roles: see server/web/roles.ts for what each may do. */
export type Role = 'admin' | 'operator' | 'auditor' | 'approver' | 'requester';

/** A console login. The password is kept only as an argon2id hash. */
export interface UserDoc {
  _id: string;
  /** Lower-cased; unique. */
  email: string;
  role: Role;
  passwordHash: string;
  /** The groups claim at the last sign-in with OpenID Connect: what request rules' `group:` matches. */
  idpGroups?: string[];
  /** sha256 of the personal API token, if one was made (the token is shown once). */
  apiTokenHash?: string;
  disabled: boolean;
  /**
   * The person's own account per OS, when it is not the email's local part (set by admins,
   * commands/userAccounts.ts): what their requests elevate (commands/requests.ts ownAccount).
   */
  accounts?: AccountMap;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A person's own account names by OS; an OS left out means the email's local part. */
export type AccountMap = Partial<Record<OperatingSystem, string>>;

/**
 * A console session. The cookie holds a random id; only its sha256 is stored.
 * FerretDB has no TTL indexes, so `expiresAt` is checked on every request.
 */
export interface SessionDoc {
  _id: string;
  userId: string;
  /** Per-session CSRF token, checked on every request but GET/HEAD/OPTIONS (hidden field or x-csrf-token header). */
  csrfToken: string;
  createdAt: Date;
  expiresAt: Date;
}

/** A sign-in with OpenID Connect under way (web/oidc.ts): by the sha256 of its browser cookie; used once. */
export interface OidcLoginDoc {
  _id: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  next: string;
  expiresAt: Date;
}

/** Failed logins per email (known or not, so both look alike); a lock after too many. */
export interface LoginThrottleDoc {
  _id: string;
  failures: number;
  lockedUntil: Date | null;
  /** The lock (its `lockedUntil`) whose refused attempts are audited already: once per lock. */
  refusalAuditedFor?: Date;
  updatedAt: Date;
}

/**
 * A grant create made with an Idempotency-Key (commands/idempotentCreate.ts): the
 * grants it makes, so a repeat of the request gets them instead of new ones.
 */
export interface CreateRequestDoc {
  /** sha256 of the caller (audit actor) and the key. */
  _id: string;
  /** sha256 of the request as sent: the same key with another request is refused. */
  fingerprint: string;
  grants: GrantDoc[];
  createdAt: Date;
}

/** A data migration that has run (see `migrate`). */
export interface MigrationDoc {
  _id: string;
  at: Date;
}

/** What an email is matched by: trimmed and lower-cased (the display keeps it as typed). */
export const emailKey = (email: string): string => email.trim().toLowerCase();

export interface Collections {
  grants: Collection<GrantDoc>;
  endpoints: Collection<EndpointDoc>;
  enrollmentTokens: Collection<EnrollmentTokenDoc>;
  instructions: Collection<InstructionDoc>;
  audit: Collection<AuditDoc>;
  seenReports: Collection<SeenReportDoc>;
  smtpPolicies: Collection<SmtpPolicyDoc>;
  users: Collection<UserDoc>;
  sessions: Collection<SessionDoc>;
  loginThrottle: Collection<LoginThrottleDoc>;
  migrations: Collection<MigrationDoc>;
  createRequests: Collection<CreateRequestDoc>;
  requests: Collection<RequestDoc>;
  requestRules: Collection<RequestRulesDoc>;
  oidcLogins: Collection<OidcLoginDoc>;
}

export function collections(db: Db): Collections {
  return {
    grants: db.collection('grants'),
    endpoints: db.collection('endpoints'),
    enrollmentTokens: db.collection('enrollmentTokens'),
    instructions: db.collection('instructions'),
    audit: db.collection('audit'),
    seenReports: db.collection('seenReports'),
    smtpPolicies: db.collection('smtpPolicies'),
    users: db.collection('users'),
    sessions: db.collection('sessions'),
    loginThrottle: db.collection('loginThrottle'),
    migrations: db.collection('migrations'),
    createRequests: db.collection('createRequests'),
    requests: db.collection('requests'),
    requestRules: db.collection('requestRules'),
    oidcLogins: db.collection('oidcLogins'),
  };
}

/**
 * Plain indexes only: FerretDB has no TTL or partial indexes. Then brings
 * records of earlier versions up to date (`migrate`), as the indexes serve
 * fields those lack. Called once at start.
 */
export async function ensureIndexes(c: Collections): Promise<void> {
  await Promise.all([
    c.grants.createIndex({ state: 1, endAt: 1 }),
    c.grants.createIndex({ endpointId: 1, createdAt: -1 }),
    c.grants.createIndex({ emailKey: 1 }),
    c.audit.createIndex({ emailKey: 1 }),
    c.instructions.createIndex({ endpointId: 1, ackedAt: 1, createdAt: 1 }),
    c.audit.createIndex({ grantId: 1, seq: 1 }),
    c.audit.createIndex({ requestId: 1, seq: 1 }),
    c.audit.createIndex({ at: -1 }),
    c.endpoints.createIndex({ hostname: 1 }),
    c.users.createIndex({ email: 1 }, { unique: true }),
    c.users.createIndex({ apiTokenHash: 1 }),
    c.sessions.createIndex({ expiresAt: 1 }),
    c.audit.createIndex({ type: 1, at: -1 }),
    c.createRequests.createIndex({ createdAt: 1 }),
    c.requests.createIndex({ requesterKey: 1, createdAt: -1 }),
    c.requests.createIndex({ state: 1, expiresAt: 1 }),
  ]);
  await migrate(c);
}

/**
 * Adds `emailKey` to grants and audit events stored before searches by email
 * ignored letter case. Why a migration rather than matching both forms at
 * every search: an old record's email may be in any case, which only a
 * case-insensitive regex (a scan, on MongoDB too) would find. It runs once per
 * database (a marker in `migrations`); its own filters scan, which FerretDB
 * does for any filter but `_id`, so not at every start.
 */
async function migrate(c: Collections): Promise<void> {
  if (await c.migrations.findOne({ _id: 'email-key' })) return;
  for await (const g of c.grants.find({ emailKey: { $exists: false } }, { projection: { email: 1 } })) {
    await c.grants.updateOne({ _id: g._id }, { $set: { emailKey: emailKey(g.email) } });
  }
  for await (const e of c.audit.find({ emailKey: { $exists: false }, 'detail.email': { $type: 'string' } }, { projection: { detail: 1 } })) {
    await c.audit.updateOne({ _id: e._id }, { $set: { emailKey: emailKey(e.detail.email as string) } });
  }
  await c.migrations.updateOne({ _id: 'email-key' }, { $set: { at: new Date() } }, { upsert: true });
}
