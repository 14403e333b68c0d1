/**
 * The agent's durable state: its credential, every grant's plan and step, and
 * the reports not yet delivered. Written atomically (temp file, fsync, rename,
 * fsync of the folder) with mode 0600, so a crash leaves the old or the new
 * file, never a torn one. Passwords are never part of it.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { AgentSettings, Plan, Report } from '../protocol/messages.ts';

/**
 * removing → disabled → deleted → removed: the account is dead (disabled) before it is logged
 * off and deleted, and `deleted` waits for what it left behind to be purged.
 */
const STEPS = ['planned', 'creating', 'created', 'enabled', 'removing', 'disabled', 'deleted', 'removed', 'failed'] as const;

export const GrantRecord = z.object({
  plan: Plan,
  /** Chosen and saved before the account is created, so a crash mid-create can be cleaned up. */
  username: z.string(),
  /** Unix: the uid handed to this account, chosen with the name (never used for another). */
  uid: z.number().int().optional(),
  /** uid or SID as the OS reported it at creation: what purge looks for after deletion. */
  accountId: z.string().optional(),
  step: z.enum(STEPS),
  /** The server said: enable now (its schedule is a backstop to ours). */
  enableNow: z.boolean().default(false),
  /** The server said: remove now (revoked, or expiry due by its clock). */
  removeNow: z.boolean().default(false),
  attempts: z.number().default(0),
  /** Earliest time of the next retry after a failure. */
  retryAt: z.iso.datetime().optional(),
  /** Set once a removal-failed report was queued, so it is sent once per episode. */
  alerted: z.boolean().default(false),
  /** The credentials still have to reach the end user (the password itself is never kept). */
  emailPending: z.boolean().default(false),
  /** Ended early by the admin (for the access-ended email). */
  revoked: z.boolean().default(false),
  /**
   * The OS backstop timer (agent/os/*: armBackstop): anything but 'armed' is armed again at start
   * (a crash may have come in the middle); 'failed' is retried with backoff from `backstopRetryAt`.
   */
  backstop: z.enum(['none', 'arming', 'armed', 'failed']).default('none'),
  /**
   * elevate-account: the baseline, saved before the membership is changed: whether the account was
   * in the group already (then nothing is taken away at the end), and whether a sudoers drop-in
   * was (or may have been) written.
   */
  elevation: z.object({ wasMember: z.boolean(), sudo: z.boolean() }).optional(),
  /** Administrators grants: the privileged groups when the grant was enabled (guard.ts), and what was found since. */
  guard: z
    .object({
      members: z.array(z.object({ group: z.string(), name: z.string() })),
      accounts: z.array(z.string()),
      sudoers: z.string(),
      found: z.array(z.string()).default([]),
      sudoersReported: z.boolean().default(false),
    })
    .optional(),
  backstopAttempts: z.number().default(0),
  backstopRetryAt: z.iso.datetime().optional(),
});
export type GrantRecord = z.infer<typeof GrantRecord>;

export const AgentState = z.object({
  version: z.literal(1),
  serverUrl: z.string(),
  endpointId: z.string(),
  credential: z.string(),
  hostname: z.string(),
  /** Sandbox root for Linux accounts (tests and demo); absent in production. */
  sandboxRoot: z.string().optional(),
  grants: z.record(z.string(), GrantRecord),
  /** Agent Settings from the server; the SMTP password only as a box sealed with the local key. */
  settings: z
    .object({
      revision: z.string(),
      smtp: AgentSettings.shape.smtp
        .unwrap()
        .omit({ password: true })
        .extend({ passwordBox: z.string().optional() })
        .nullable(),
    })
    .optional(),
  /** The next uid to hand out (Unix); only ever grows, so no account inherits an earlier one's files. */
  nextUid: z.number().int().optional(),
  /**
   * Grants a revoke named before their plan arrived (a bare revoke pushed during a server
   * outage): a provision that comes later must not create the account. Newest last.
   */
  endedBeforePlan: z.array(z.string()).default([]),
  /** Recently applied instruction ids, newest last. */
  seenInstructions: z.array(z.string()),
  outbox: z.array(Report),
});
export type AgentState = z.infer<typeof AgentState>;

const SEEN_KEEP = 2000;

export class StateStore {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    readonly state: AgentState,
  ) {}

  static async load(file: string): Promise<StateStore> {
    const raw = JSON.parse(await readFile(file, 'utf8'));
    return new StateStore(file, AgentState.parse(raw));
  }

  static async create(file: string, state: z.input<typeof AgentState>): Promise<StateStore> {
    const s = new StateStore(file, AgentState.parse(state));
    await s.save();
    return s;
  }

  seen(id: string): boolean {
    return this.state.seenInstructions.includes(id);
  }

  /** Remembers an applied instruction id; returns false if it was already seen. */
  markSeen(id: string): boolean {
    if (this.state.seenInstructions.includes(id)) return false;
    this.state.seenInstructions.push(id);
    this.state.seenInstructions.splice(0, Math.max(0, this.state.seenInstructions.length - SEEN_KEEP));
    return true;
  }

  /** Writes the current state; concurrent calls are serialised and each sees its own changes on disk. */
  save(): Promise<void> {
    const snapshot = JSON.stringify(this.state, null, 1);
    // A failed write must not poison every later one, hence the catch.
    this.writing = this.writing.catch(() => {}).then(() => writeAtomic(this.file, snapshot));
    return this.writing;
  }
}

async function writeAtomic(file: string, data: string): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  // Why: without an fsync of the folder the rename itself may be lost on power failure.
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
