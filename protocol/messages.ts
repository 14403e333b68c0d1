/**
 * The agent ⇄ server protocol (JSON over HTTPS, long-poll for push).
 * Both sides validate with these schemas, so a malformed message is rejected
 * at the edge instead of half-applied.
 */
import { z } from 'zod';
import { GROUPS, OPERATING_SYSTEMS } from './groups.ts';

export const API_PREFIX = '/agent/v1';

/**
 * temporary-access: a new random account, mailed to the end user, deleted at the end;
 * elevate-account: an existing account put in the group for the window and restored after.
 */
export const OPERATIONS = ['temporary-access', 'elevate-account'] as const;
export type Operation = (typeof OPERATIONS)[number];
/** At the end of an elevation: end every session of the account (default), or only tell the user. */
export const END_ACTIONS = ['logoff', 'notify'] as const;
/** What an agent tells the server it can do (its inventory); the server sends nothing else. */
export const CAPABILITIES = ['elevate-account', 'passwordless-sudo'] as const;

/** Everything the agent needs to run a grant on its own, even offline. */
export const Plan = z.object({
  grantId: z.string().min(1),
  /** Absent in plans from before elevation existed. */
  operation: z.enum(OPERATIONS).default('temporary-access'),
  /** elevate-account: the existing local account (Windows: also DOMAIN\\user or a SID). */
  account: z.string().min(1).max(256).optional(),
  endAction: z.enum(END_ACTIONS).default('logoff'),
  /**
   * elevate-account: the baseline an earlier agent of this endpoint recorded (was the account in
   * the group before the grant?), sent again with the plan on a re-enrollment's handover, so the
   * new agent does not take a membership we added for the account's own.
   */
  wasMember: z.boolean().optional(),
  /** Seconds before the end at which the person is warned that the end action comes (largest first). */
  endWarnings: z.array(z.number().int().positive()).max(10).default([]),
  /** Administrators on Linux/macOS: sudo without a password, through a drop-in under /etc/sudoers.d. */
  passwordlessSudo: z.boolean().default(false),
  /**
   * A grant of Administrators watches the privileged groups while it is live: a member added that
   * is neither one of our grants nor in `allowed` is a rogue admin, taken out (`remove`: and locked
   * if it was made during the window, never deleted) or only reported (`report`).
   */
  guard: z.object({ action: z.enum(['remove', 'report']), allowed: z.array(z.string().max(256)).max(500) }).default({ action: 'remove', allowed: [] }),
  group: z.enum(GROUPS),
  email: z.string(),
  startAt: z.iso.datetime(),
  enableAt: z.iso.datetime(),
  endAt: z.iso.datetime(),
  serverSideSmtp: z.boolean(),
  /** Who asked for the access (the grant's creator, as the credentials email names them). */
  requestedBy: z.string().max(320).optional(),
});
export type Plan = z.infer<typeof Plan>;

/**
 * provision: create the account disabled and keep the plan;
 * enable / expire: the server's own schedule says the step is due now
 *   (a backstop for an agent whose clock or timers went wrong);
 * revoke: end early;
 * resend: set a new password and send the credentials again.
 */
export const INSTRUCTION_KINDS = ['provision', 'enable', 'expire', 'revoke', 'resend'] as const;
export type InstructionKind = (typeof INSTRUCTION_KINDS)[number];
const PlannedInstruction = z.object({
  id: z.string().min(1),
  kind: z.enum(INSTRUCTION_KINDS),
  plan: Plan,
});
/**
 * A revoke naming the grant only: the agent finds the plan in its own state, and remembers a grant
 * it does not know yet as ended. (The server's push during a database outage carries the plan
 * when it has it, for agents that predate this form.)
 */
const BareRevoke = z.object({
  id: z.string().min(1),
  kind: z.literal('revoke'),
  grantId: z.string().min(1),
});
export const Instruction = z.union([PlannedInstruction, BareRevoke]);
export type Instruction = z.infer<typeof Instruction>;

/** The grant an instruction is about. */
export const grantIdOf = (ins: Instruction): string => ('plan' in ins ? ins.plan.grantId : ins.grantId);

/**
 * A long-poll answer. `settingsRevision` changes whenever the endpoint's Agent Settings do.
 * Instructions are checked one by one (`parseInstructions`), so one malformed instruction is
 * rejected on its own instead of making every poll of the endpoint fail.
 */
export const PollResponse = z.object({
  instructions: z.array(z.unknown()),
  settingsRevision: z.string(),
  /** SMTP tests the admin asked this endpoint to run; with `to`, a test message is sent there too. */
  smtpTests: z.array(z.object({ id: z.string(), to: z.string().optional() })).default([]),
});
export type PollResponse = z.infer<typeof PollResponse>;

/** An instruction the agent could not accept, and why; enough of it to tell the server which. */
export interface RejectedInstruction {
  id: string | null;
  grantId: string | null;
  /** What it asked for, when that much could be read. */
  kind: string | null;
  reason: string;
}

/** Splits a poll's instructions into the valid ones and the rejected ones. */
export function parseInstructions(raw: unknown[]): { valid: Instruction[]; rejected: RejectedInstruction[] } {
  const valid: Instruction[] = [];
  const rejected: RejectedInstruction[] = [];
  for (const item of raw) {
    const r = Instruction.safeParse(item);
    if (r.success) {
      valid.push(r.data);
      continue;
    }
    const o = (item ?? {}) as { id?: unknown; kind?: unknown; grantId?: unknown; plan?: { grantId?: unknown } };
    const str = (v: unknown) => (typeof v === 'string' && v.length > 0 && v.length <= 200 ? v : null);
    const reason = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(instruction)'}: ${i.message}`).join('; ');
    rejected.push({ id: str(o.id), grantId: str(o.plan?.grantId) ?? str(o.grantId), kind: str(o.kind), reason: `instruction rejected by the agent: ${reason}`.slice(0, 1000) });
  }
  return { valid, rejected };
}

/** The endpoint's effective Agent Settings; the SMTP password travels only over this authenticated call. */
export const AgentSettings = z.object({
  revision: z.string(),
  smtp: z
    .object({
      host: z.string(),
      port: z.number(),
      security: z.enum(['starttls', 'tls', 'none']),
      username: z.string().optional(),
      password: z.string().optional(),
      from: z.string(),
      timeZone: z.string(),
      tlsCa: z.string().optional(),
      organisation: z.string().optional(),
    })
    .nullable(),
});
export type AgentSettings = z.infer<typeof AgentSettings>;

/** Server-side SMTP: the agent hands the fresh credentials over; the server keeps them in memory only. */
export const CredentialHandover = z.strictObject({
  grantId: z.string().min(1),
  username: z.string().min(1).max(20),
  password: z.string().min(8).max(128),
});
export type CredentialHandover = z.infer<typeof CredentialHandover>;

export const SmtpTestResult = z.strictObject({ ok: z.boolean(), code: z.string().max(50).optional(), reason: z.string().max(1000).optional() });
export type SmtpTestResult = z.infer<typeof SmtpTestResult>;

export const Ack = z.object({ ids: z.array(z.string().min(1)).max(1000) }).strict();

/**
 * disabled: the first step of a removal is done (no logon possible any more);
 * removed: the account is deleted; cleanup-failed: what it left behind could not be purged yet;
 * rejected: an instruction for the grant was malformed and not applied;
 * backstop-failed: the OS timer that ends the account if the agent cannot could not be armed (retried);
 * rogue-admin: a member added to a privileged group during the window, and what was done about it;
 * sudoers-changed: the sudoers files changed during a Linux window (reported, not undone);
 * membership-changed: an elevation's membership was changed by someone else during the window;
 * ended-by-user: the person at the endpoint ended the grant (`jit end`); detail = their OS account name.
 * For elevate-account, created = the account was found and may be elevated, enabled = put in the
 * group, disabled = taken out again (the rights are gone), removed = sessions ended, all restored.
 */
export const REPORT_TYPES = [
  'created', 'enabled', 'disabled', 'logged-off', 'removed', 'failed', 'removal-failed', 'cleanup-failed', 'rejected', 'backstop-failed',
  'password-reset', 'email-sent', 'email-failed', 'rogue-admin', 'sudoers-changed', 'membership-changed', 'ended-by-user',
] as const;
export type ReportType = (typeof REPORT_TYPES)[number];

/** One step's outcome. `id` is made by the agent, so a re-sent report is applied once. */
export const Report = z
  .object({
    id: z.string().min(1).max(100),
    grantId: z.string().min(1),
    type: z.enum(REPORT_TYPES),
    at: z.iso.datetime(),
    username: z.string().max(20).optional(),
    detail: z.string().max(2000).optional(),
  })
  .strict();
export type Report = z.infer<typeof Report>;

export const ReportBatch = z.object({ reports: z.array(Report).max(500) }).strict();

export const EnrollRequest = z
  .object({
    token: z.string().min(1).max(200),
    /** Checked by the server as a DNS name (RFC 1123), so it can go into emails safely. */
    hostname: z.string().min(1).max(253),
    os: z.enum(OPERATING_SYSTEMS),
    agentVersion: z.string().min(1).max(50),
    /** SHA-256 (hex) of the machine's identity: the same machine enrolling again replaces its record. */
    machineId: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  })
  .strict();
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z.object({ endpointId: z.string(), credential: z.string() });
export type EnrollResponse = z.infer<typeof EnrollResponse>;

/** One local account as the endpoint sees it, so the wizard can offer it and refuse a system account. */
export const LocalAccount = z
  .object({
    name: z.string().min(1).max(256),
    /** uid on Unix, SID on Windows. */
    id: z.string().max(200),
    /** A system account (Linux uid < 1000 or no login shell, macOS uid < 501 or a leading underscore, Windows built-ins). */
    system: z.boolean(),
    /** In the privileged group now. */
    admin: z.boolean(),
    /** One of ours (a temporary account). */
    managed: z.boolean(),
  })
  .strict();
export type LocalAccount = z.infer<typeof LocalAccount>;

export const INVENTORY_MAX_ACCOUNTS = 120;

/** What the agent sends at start and when it changes: its local accounts and what it can do. */
export const Inventory = z
  .object({
    /** At most INVENTORY_MAX_ACCOUNTS (the body limit is 16 kB): people's accounts first, then system ones. */
    accounts: z.array(LocalAccount).max(120),
    /** CAPABILITIES it has; unknown names from newer agents are kept and ignored. */
    capabilities: z.array(z.string().min(1).max(50)).max(50),
  })
  .strict();
export type Inventory = z.infer<typeof Inventory>;
