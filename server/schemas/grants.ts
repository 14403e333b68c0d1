import { z } from 'zod';
import { GROUPS } from '../../protocol/groups.ts';
import { END_ACTIONS, OPERATIONS } from '../../protocol/messages.ts';
import { GRANT_STATES } from '../domain/lifecycle.ts';
import type { ServerConfig } from '../config.ts';

type Limits = Pick<ServerConfig, 'maxDurationMinutes' | 'startPastToleranceSeconds' | 'maxStartAheadDays'>;

const isoInstant = () => z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time with a time zone' }).transform((s) => new Date(s));

/**
 * Every stored date must have a plain 4-digit year in UTC: "9999-12-31T23:00:00-23:59"
 * is year 10000 there, which `toISOString` writes "+010000-…" and nothing downstream
 * (the agent's plan included) reads. The horizon below keeps dates far from that;
 * this holds whatever the configuration.
 */
const plainYear = (d: Date) => !Number.isNaN(d.getTime()) && /^\d{4}-/.test(d.toISOString());

/** The JIT wizard's fields. Unknown fields are rejected, not ignored. */
export function createGrantSchema(limits: Limits, now: Date) {
  return z
    .strictObject({
      operation: z.enum(OPERATIONS, { error: `must be one of ${OPERATIONS.join(', ')}` }),
      /** elevate-account: the existing account (checked against the endpoint's OS in createGrants). */
      account: z.string({ error: 'must be a string' }).trim().min(1, 'name the existing account to elevate').max(256).optional(),
      endAction: z.enum(END_ACTIONS, { error: `must be one of ${END_ACTIONS.join(', ')}` }).default('logoff'),
      passwordlessSudo: z.boolean({ error: 'must be true or false' }).default(false),
      email: z.email({ error: 'must be a valid email address' }).max(254),
      endpoints: z.array(z.string().min(1).max(100), { error: 'must be a list of endpoint ids or hostnames' }).min(1, 'choose at least one endpoint').max(100),
      group: z.enum(GROUPS, { error: `must be one of ${GROUPS.join(', ')}` }),
      startAt: isoInstant(),
      endAt: isoInstant(),
      serverSideSmtp: z.boolean({ error: 'must be true or false' }),
    })
    .superRefine((v, ctx) => {
      if (v.operation === 'elevate-account' && v.account === undefined) ctx.addIssue({ code: 'custom', path: ['account'], message: 'name the existing account to elevate' });
      if (v.operation === 'temporary-access' && v.account !== undefined) ctx.addIssue({ code: 'custom', path: ['account'], message: 'only for elevate-account (temporary-access makes a new account)' });
      if (v.passwordlessSudo && v.group !== 'Administrators') ctx.addIssue({ code: 'custom', path: ['passwordlessSudo'], message: 'only with the Administrators group' });
      // Why: zod 4 still runs this refinement when a date field failed its format check,
      // with the raw string in place of the Date; that field already has its error.
      if (!(v.startAt instanceof Date) || !(v.endAt instanceof Date)) return;
      const earliest = now.getTime() - limits.startPastToleranceSeconds * 1000;
      const latest = now.getTime() + limits.maxStartAheadDays * 86_400_000;
      if (v.startAt.getTime() > latest) {
        ctx.addIssue({ code: 'custom', path: ['startAt'], message: `must be at most ${limits.maxStartAheadDays} days ahead` });
      } else if (v.startAt.getTime() < earliest) {
        ctx.addIssue({ code: 'custom', path: ['startAt'], message: `must not be more than ${limits.startPastToleranceSeconds} s in the past` });
      } else if (!plainYear(v.startAt)) {
        ctx.addIssue({ code: 'custom', path: ['startAt'], message: 'must be between the years 0000 and 9999 in UTC' });
      }
      const minutes = (v.endAt.getTime() - v.startAt.getTime()) / 60_000;
      if (minutes <= 0) ctx.addIssue({ code: 'custom', path: ['endAt'], message: 'must be after startAt' });
      else if (minutes > limits.maxDurationMinutes) {
        ctx.addIssue({ code: 'custom', path: ['endAt'], message: `access may last at most ${limits.maxDurationMinutes} minutes` });
      } else if (!plainYear(v.endAt)) {
        ctx.addIssue({ code: 'custom', path: ['endAt'], message: 'must be between the years 0000 and 9999 in UTC' });
      }
    });
}
export type CreateGrantInput = z.infer<ReturnType<typeof createGrantSchema>>;

export const listGrantsSchema = z.strictObject({
  state: z.enum(GRANT_STATES).optional(),
  endpoint: z.string().max(100).optional(),
  email: z.string().max(254).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const grantIdSchema = z.strictObject({ id: z.string().min(1).max(100) });
