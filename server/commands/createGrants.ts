import { randomUUID } from 'node:crypto';
import { OS_LABEL, osHonours } from '../../protocol/groups.ts';
import type { Ctx } from '../context.ts';
import { enableAtFor } from '../domain/lifecycle.ts';
import { invalid, type FieldIssue } from '../errors.ts';
import type { CreateGrantInput } from '../schemas/grants.ts';
import { audit } from '../store/audit.ts';
import { emailKey, type EndpointDoc, type GrantDoc } from '../store/collections.ts';
import { ambiguous, findEndpoints } from '../store/endpoints.ts';
import { planOf, queueInstruction } from './instructions.ts';
import { outageOf } from '../journal/registry.ts';
import { scheduleGrantJobs } from './scheduleGrant.ts';

/**
 * Creates one grant per endpoint. Everything is checked before anything is
 * written, so a rejected request leaves no trace.
 */
export async function createGrants(ctx: Ctx, input: CreateGrantInput, actor: string): Promise<GrantDoc[]> {
  const endpoints = await resolveEndpoints(ctx, input);
  const now = new Date();
  const requestId = randomUUID();
  const enableAt = enableAtFor(input.startAt, ctx.config.leadTimeSeconds, now);
  const grants: GrantDoc[] = endpoints.map((e) => ({
    _id: randomUUID(),
    requestId,
    operation: input.operation,
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
    delivery: { status: 'pending', attempts: 0 },
    createdBy: actor,
    createdAt: now,
    updatedAt: now,
  }));
  await ctx.c.grants.insertMany(grants);
  // Known to the outage kit at once: a revoke during a database outage can then reach the agent.
  for (const g of grants) outageOf(ctx)?.liveGrants.note(g._id, g.endpointId, planOf(g));
  for (const g of grants) {
    await audit(ctx.c, {
      actor,
      type: 'grant.requested',
      grantId: g._id,
      endpointId: g.endpointId,
      detail: { email: g.email, group: g.group, startAt: g.startAt, enableAt: g.enableAt, endAt: g.endAt, serverSideSmtp: g.serverSideSmtp },
    });
    // The agent first: its own timers do the work; the jobs are the backstop (and are rebuilt at start).
    await queueInstruction(ctx, g, 'provision');
    await scheduleGrantJobs(ctx, g);
  }
  return grants;
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
