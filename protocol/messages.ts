/**
 * The agent ⇄ server protocol (JSON over HTTPS, long-poll for push).
 * Both sides validate with these schemas, so a malformed message is rejected
 * at the edge instead of half-applied.
 */
import { z } from 'zod';
import { GROUPS, OPERATING_SYSTEMS } from './groups.ts';

export const API_PREFIX = '/agent/v1';

/** Everything the agent needs to run a grant on its own, even offline. */
export const Plan = z.object({
  grantId: z.string().min(1),
  group: z.enum(GROUPS),
  email: z.string(),
  startAt: z.iso.datetime(),
  enableAt: z.iso.datetime(),
  endAt: z.iso.datetime(),
  serverSideSmtp: z.boolean(),
});
export type Plan = z.infer<typeof Plan>;

/**
 * provision: create the account disabled and keep the plan;
 * enable / expire: the server's own schedule says the step is due now
 *   (a backstop for an agent whose clock or timers went wrong);
 * revoke: end early.
 */
export const INSTRUCTION_KINDS = ['provision', 'enable', 'expire', 'revoke'] as const;
export const Instruction = z.object({
  id: z.string().min(1),
  kind: z.enum(INSTRUCTION_KINDS),
  plan: Plan,
});
export type Instruction = z.infer<typeof Instruction>;

export const InstructionBatch = z.object({ instructions: z.array(Instruction) });

export const Ack = z.object({ ids: z.array(z.string().min(1)).max(1000) }).strict();

export const REPORT_TYPES = ['created', 'enabled', 'logged-off', 'removed', 'failed', 'removal-failed'] as const;
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
    hostname: z.string().min(1).max(255),
    os: z.enum(OPERATING_SYSTEMS),
    agentVersion: z.string().min(1).max(50),
  })
  .strict();
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z.object({ endpointId: z.string(), credential: z.string() });
export type EnrollResponse = z.infer<typeof EnrollResponse>;
