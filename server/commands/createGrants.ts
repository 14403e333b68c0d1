import { randomUUID } from 'node:crypto';
import { OS_LABEL, osHonours } from '../../protocol/groups.ts';
import type { Ctx } from '../context.ts';
import { enableAtFor, isFinal } from '../domain/lifecycle.ts';
import { invalid, type FieldIssue } from '../errors.ts';
import { outageOf } from '../journal/registry.ts';
import type { CreateGrantInput } from '../schemas/grants.ts';
import { auditOnce, transitionAuditId } from '../store/audit.ts';
import { emailKey, type EndpointDoc, type GrantDoc } from '../store/collections.ts';
import { ambiguous, findEndpoints } from '../store/endpoints.ts';
import { planOf, queueInstruction } from './instructions.ts';
import { elevationIssues } from './elevationChecks.ts';
import { scheduleGrantJobs } from './scheduleGrant.ts';

/**
 * Creates one grant per endpoint. Everything is checked before anything is
 * written, so a rejected request leaves no trace. (A request that fails half-way,
 * the database gone, may leave some of it: `createGrantsOnce` with an
 * Idempotency-Key completes it when repeated; see idempotentCreate.ts.)
 */
export async function createGrants(ctx: Ctx, input: CreateGrantInput, actor: string): Promise<GrantDoc[]> {
  return writeGrants(ctx, await planGrants(ctx, input, actor));
}

/** The grants a request makes, checked and not stored yet. */
export async function planGrants(ctx: Ctx, input: CreateGrantInput, actor: string): Promise<GrantDoc[]> {
  const endpoints = await resolveEndpoints(ctx, input);
  const refused = await elevationIssues(ctx, input, endpoints);
  if (refused.length) throw invalid(refused);
  const now = new Date();
  const warnings = [...ctx.config.elevation.endWarningsSeconds].sort((a, b) => b - a);
  const elevation = input.operation === 'elevate-account' ? { account: input.account!, endAction: input.endAction, endWarnings: warnings } : {};
  const guard = { action: ctx.config.elevation.rogueAdmins, allowed: ctx.config.elevation.allowedAdmins };
  const requestId = randomUUID();
  const enableAt = enableAtFor(input.startAt, ctx.config.leadTimeSeconds, now);
  return endpoints.map((e) => ({
    _id: randomUUID(),
    requestId,
    operation: input.operation,
    ...elevation,
    passwordlessSudo: input.passwordlessSudo,
    guard,
    email: input.email,
    emailKey: emailKey(input.email),
    endpointId: e._id,
    hostname: e.hostname,
    group: input.group,
    startAt: input.startAt,
    enableAt,
    endAt: input.endAt,
    serverSideSmtp: input.serverSideSmtp,
    state: 'requested',
    revokeRequested: false,
    // elevate-account mails no credentials (the person's own account): nothing to deliver or to close.
    delivery: input.operation === 'elevate-account' ? { status: 'not-sent', attempts: 0, lastError: 'no credentials: the person’s own account is elevated' } : { status: 'pending', attempts: 0 },
    createdBy: actor,
    createdAt: now,
    updatedAt: now,
  }));
}

/**
 * Stores planned grants with their audit event, provision instruction and jobs.
 * Every step is keyed by the grant (its `_id`, the audit id `grant:<id>:requested`,
 * the instruction id `provision:<id>`, unique jobs), and a duplicate is skipped, so
 * writing the same grants again completes what an interrupted first write left out
 * and adds nothing. With `resume`, grants already stored are read back (and one that
 * has ended is left alone: its instructions were deleted and must not come back);
 * returns the grants as stored.
 */
export async function writeGrants(ctx: Ctx, planned: GrantDoc[], resume = false): Promise<GrantDoc[]> {
  const stored = resume ? await Promise.all(planned.map((g) => ctx.c.grants.findOne({ _id: g._id }))) : planned.map(() => null);
  const missing = planned.filter((_g, i) => !stored[i]);
  if (missing.length) await insertNew(ctx, missing);
  const grants = planned.map((g, i) => stored[i] ?? g);
  const live = grants.filter((g) => !isFinal(g.state));
  // Known to the outage kit at once: a revoke during a database outage can then reach the agent.
  for (const g of live) outageOf(ctx)?.liveGrants.note(g._id, g.endpointId, planOf(g));
  for (const g of live) {
    await auditOnce(ctx.c, transitionAuditId(g._id, 'requested'), {
      actor: g.createdBy,
      at: g.createdAt,
      type: 'grant.requested',
      grantId: g._id,
      endpointId: g.endpointId,
      detail: { operation: g.operation, ...(g.account ? { account: g.account, endAction: g.endAction } : {}), email: g.email, group: g.group, startAt: g.startAt, enableAt: g.enableAt, endAt: g.endAt, serverSideSmtp: g.serverSideSmtp },
    });
    // The agent first: its own timers do the work; the jobs are the backstop (and are rebuilt at start).
    await queueInstruction(ctx, g, 'provision', provisionId(g._id));
    await scheduleGrantJobs(ctx, g);
  }
  return grants;
}

/** The id of a grant's first provision instruction: fixed, so it is queued once. */
const provisionId = (grantId: string) => `provision:${grantId}`;

/** Inserts the grants; one stored already (a repeat) is skipped. */
async function insertNew(ctx: Ctx, grants: GrantDoc[]): Promise<void> {
  try {
    await ctx.c.grants.insertMany(grants, { ordered: false });
  } catch (err) {
    const errors = (err as { writeErrors?: { code?: number }[] | { code?: number } }).writeErrors;
    const list = Array.isArray(errors) ? errors : errors ? [errors] : [];
    if (!list.length || list.some((e) => e.code !== 11000)) throw err;
  }
}

async function resolveEndpoints(ctx: Ctx, input: CreateGrantInput): Promise<EndpointDoc[]> {
  const issues: FieldIssue[] = [];
  const found: EndpointDoc[] = [];
  for (const [i, ref] of input.endpoints.entries()) {
    const matches = await findEndpoints(ctx.c, ref);
    const e = matches.length === 1 ? matches[0]! : null;
    if (matches.length > 1) issues.push({ field: `endpoints.${i}`, message: ambiguous(ref, matches) });
    else if (!e) issues.push({ field: `endpoints.${i}`, message: `unknown endpoint ${JSON.stringify(ref)}` });
    else if (!osHonours(e.os, input.group)) {
      issues.push({ field: 'group', message: `${OS_LABEL[e.os]} endpoint ${e.hostname} has no "${input.group}" group` });
    } else if (found.some((f) => f._id === e._id)) {
      issues.push({ field: `endpoints.${i}`, message: `endpoint ${e.hostname} is listed twice` });
    } else found.push(e);
  }
  if (issues.length) throw invalid(issues);
  return found;
}
