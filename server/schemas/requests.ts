import { z } from 'zod';
import { GROUPS } from '../../protocol/groups.ts';
import { OPERATIONS } from '../../protocol/messages.ts';
import type { ServerConfig } from '../config.ts';
import { REQUEST_STATES } from '../domain/requests.ts';

type Limits = Pick<ServerConfig, 'requests' | 'startPastToleranceSeconds' | 'maxStartAheadDays'>;

const isoInstant = () => z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time with a time zone' }).transform((s) => new Date(s));

/** A start a request or an approval may ask for: not in the past, not too far ahead. */
function checkStart(limits: Limits, now: Date, startAt: Date | undefined, ctx: z.RefinementCtx): void {
  if (!(startAt instanceof Date)) return;
  if (startAt.getTime() < now.getTime() - limits.startPastToleranceSeconds * 1000) ctx.addIssue({ code: 'custom', path: ['startAt'], message: 'must not be in the past' });
  else if (startAt.getTime() > now.getTime() + limits.maxStartAheadDays * 86_400_000) ctx.addIssue({ code: 'custom', path: ['startAt'], message: `must be at most ${limits.maxStartAheadDays} days ahead` });
}

/** A request as a person files it. The account is never chosen: an elevation is of the requester's own. */
export function fileRequestSchema(limits: Limits, now: Date) {
  const r = limits.requests;
  return z
    .strictObject({
      endpoint: z.string({ error: 'name the endpoint (id or hostname)' }).trim().min(1, 'name the endpoint (id or hostname)').max(100).optional(),
      /** Several endpoints at once: one request each, each routed by the rules on its own. */
      endpoints: z.array(z.string().trim().min(1, 'name the endpoint (id or hostname)').max(100), { error: 'must be a list of endpoint ids or hostnames' }).min(1, 'choose at least one endpoint').max(20, 'at most 20 endpoints at once').optional(),
      operation: z.enum(OPERATIONS, { error: `must be one of ${OPERATIONS.join(', ')}` }).default('elevate-account'),
      /** Only to be refused when it is not the requester's own (see commands/requests.ts). */
      account: z.string().trim().min(1).max(256).optional(),
      group: z.enum(GROUPS, { error: `must be one of ${GROUPS.join(', ')}` }),
      minutes: z.number({ error: 'must be a whole number of minutes' }).int('must be a whole number of minutes').optional(),
      startAt: isoInstant().optional(),
      endAt: isoInstant().optional(),
      reason: z.string({ error: 'must be a string' }).trim().max(500, 'at most 500 characters').default(''),
    })
    .superRefine((v, ctx) => {
      if ((v.endpoint === undefined) === (v.endpoints === undefined)) ctx.addIssue({ code: 'custom', path: ['endpoint'], message: 'name the endpoint (id or hostname), or several as endpoints: [...]' });
      if (!r.groups.includes(v.group)) ctx.addIssue({ code: 'custom', path: ['group'], message: `requests may ask for ${r.groups.join(', ')} only` });
      if (r.reasonRequired && v.reason.length < Math.max(1, r.reasonMinLength)) ctx.addIssue({ code: 'custom', path: ['reason'], message: `say why, in at least ${Math.max(1, r.reasonMinLength)} characters` });
      checkStart(limits, now, v.startAt, ctx);
      if (v.endAt !== undefined && v.startAt === undefined) ctx.addIssue({ code: 'custom', path: ['startAt'], message: 'an end needs a start' });
      if (v.endAt !== undefined && v.minutes !== undefined) ctx.addIssue({ code: 'custom', path: ['minutes'], message: 'give minutes or an end, not both' });
      const minutes = v.endAt instanceof Date && v.startAt instanceof Date ? (v.endAt.getTime() - v.startAt.getTime()) / 60_000 : v.minutes;
      const field = v.endAt !== undefined ? 'endAt' : 'minutes';
      if (minutes === undefined) ctx.addIssue({ code: 'custom', path: ['minutes'], message: 'say for how long (minutes, or a start and an end)' });
      else if (!(minutes > 0)) ctx.addIssue({ code: 'custom', path: [field], message: 'must be more than zero' });
      else if (minutes > r.maxMinutes) ctx.addIssue({ code: 'custom', path: [field], message: `access may last at most ${r.maxMinutes} minutes` });
    })
    .transform(({ endAt, ...v }) => ({ ...v, minutes: endAt && v.startAt ? Math.ceil((endAt.getTime() - v.startAt.getTime()) / 60_000) : v.minutes! }));
}
export type FileRequestInput = z.infer<ReturnType<typeof fileRequestSchema>>;

/** An approval may shorten the access and move its start; it may not lengthen it. */
export function approveSchema(limits: Limits, now: Date) {
  return z
    .strictObject({
      minutes: z.number({ error: 'must be a whole number of minutes' }).int('must be a whole number of minutes').min(1, 'must be more than zero').optional(),
      startAt: isoInstant().optional(),
      note: z.string().trim().max(500, 'at most 500 characters').optional(),
    })
    .superRefine((v, ctx) => checkStart(limits, now, v.startAt, ctx));
}
export type ApproveInput = z.infer<ReturnType<typeof approveSchema>>;

export const denySchema = z.strictObject({ note: z.string({ error: 'say why (the requester sees it)' }).trim().min(1, 'say why (the requester sees it)').max(500, 'at most 500 characters') });

export const listRequestsSchema = z.strictObject({
  state: z.enum(REQUEST_STATES).optional(),
  /** Only the caller's own (a requester's list is always that). */
  mine: z.enum(['true', 'false']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const requestIdSchema = z.strictObject({ id: z.string().min(1).max(100) });
