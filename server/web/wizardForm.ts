/**
 * The JIT wizard's form, turned into the API's request body so both go
 * through createGrantSchema and createGrants. Times are typed as local
 * date-times in a named time zone.
 */
import { DateTime, IANAZone } from 'luxon';
import { GROUPS, GROUPS_BY_OS, OS_LABEL, osHonours, type Group, type OperatingSystem } from '../../protocol/groups.ts';
import type { Ctx } from '../context.ts';
import { ApiError, type FieldIssue } from '../errors.ts';
import { validate } from '../http/validate.ts';
import { createGrantSchema, type CreateGrantInput } from '../schemas/grants.ts';
import { str } from './page.ts';
import type { EndpointDoc } from '../store/collections.ts';
import { ambiguous, findEndpoints } from '../store/endpoints.ts';
import { elevationIssues } from '../commands/elevationChecks.ts';

/** The wizard's fields as typed (strings), kept to re-show them. */
export interface WizardForm {
  operation: string;
  /** elevate-account: the existing account, and what happens to its sessions at the end. */
  account: string;
  endAction: string;
  passwordlessSudo: boolean;
  email: string;
  endpoint: string;
  group: string;
  /** datetime-local values, in `tz`. */
  start: string;
  end: string;
  tz: string;
  serverSideSmtp: boolean;
}

/** Form field → its errors. */
export type FieldErrors = Record<string, string[]>;

export function readForm(body: Record<string, unknown>): WizardForm {
  return {
    operation: str(body.operation) || 'temporary-access',
    account: str(body.account).trim(),
    endAction: str(body.endAction) || 'logoff',
    passwordlessSudo: body.passwordlessSudo === 'on' || body.passwordlessSudo === 'true',
    email: str(body.email).trim(),
    endpoint: str(body.endpoint),
    group: str(body.group),
    start: str(body.start),
    end: str(body.end),
    tz: str(body.tz).trim() || 'UTC',
    serverSideSmtp: body.serverSideSmtp === 'on' || body.serverSideSmtp === 'true',
  };
}

export const emptyForm = (): WizardForm => readForm({});

/** Valid stand-ins for every field but the times. */
const TIME_ONLY = { operation: 'temporary-access', email: 'x@example.com', endpoints: ['x'], group: 'Users', serverSideSmtp: false, passwordlessSudo: false };

const FIELD_OF: Record<string, string> = { startAt: 'start', endAt: 'end', endpoints: 'endpoint' };
const formField = (apiField: string) => FIELD_OF[apiField.split('.')[0]!] ?? apiField.split('.')[0]!;

export function toInstant(local: string, tz: string): DateTime | null {
  if (!local || !IANAZone.isValidZone(tz)) return null;
  const d = DateTime.fromISO(local, { zone: tz });
  return d.isValid ? d : null;
}

/** A datetime-local value for an instant, to the second. */
export const toLocal = (d: DateTime, tz: string) => d.setZone(tz).toFormat("yyyy-LL-dd'T'HH:mm:ss");

/** "1 h 30 min", or null when the times do not make a range. */
export function duration(f: WizardForm): string | null {
  const s = toInstant(f.start, f.tz);
  const e = toInstant(f.end, f.tz);
  if (!s || !e || e <= s) return null;
  const mins = Math.round(e.diff(s, 'minutes').minutes);
  if (mins < 1) return `${Math.round(e.diff(s, 'seconds').seconds)} s`;
  const h = Math.floor(mins / 60);
  return [h ? `${h} h` : '', mins % 60 ? `${mins % 60} min` : ''].filter(Boolean).join(' ');
}

/** Applies a quick choice: "start-now", "plus-1h", "plus-4h". */
export function quick(f: WizardForm, action: string, now = DateTime.now()): WizardForm {
  const tz = IANAZone.isValidZone(f.tz) ? f.tz : 'UTC';
  if (action === 'start-now') {
    const start = now.startOf('second');
    const end = toInstant(f.end, tz);
    return { ...f, tz, start: toLocal(start, tz), end: end && end > start ? f.end : toLocal(start.plus({ hours: 1 }), tz) };
  }
  const hours = action === 'plus-4h' ? 4 : 1;
  const start = toInstant(f.start, tz) ?? now.startOf('second');
  return { ...f, tz, start: toLocal(start, tz), end: toLocal(start.plus({ hours }), tz) };
}

/**
 * Checks the form exactly as the API would (same schema), plus the endpoint
 * and its OS's groups, so the summary never promises what createGrants refuses.
 */
/** The form as a valid grant request (and its endpoint, for the summary), or the errors to show. */
export async function checkForm(ctx: Ctx, f: WizardForm): Promise<{ input: CreateGrantInput | null; endpoint: EndpointDoc | null; errors: FieldErrors }> {
  const issues: FieldIssue[] = [];
  const body: Record<string, unknown> = { operation: f.operation, email: f.email, endpoints: f.endpoint ? [f.endpoint] : [], serverSideSmtp: f.serverSideSmtp, passwordlessSudo: f.passwordlessSudo };
  // The elevation's fields go only with it: hidden, they may still hold what was typed before a switch.
  if (f.operation === 'elevate-account') Object.assign(body, { account: f.account, endAction: f.endAction });
  if (f.group) body.group = f.group;
  // Fields whose own check failed already: the schema's complaint about them would only repeat it.
  const skip = new Set<string>();
  if (!IANAZone.isValidZone(f.tz)) {
    issues.push({ field: 'tz', message: 'must be an IANA time zone such as Europe/Paris' });
    skip.add('start').add('end');
  }
  for (const [field, key] of [['start', 'startAt'], ['end', 'endAt']] as const) {
    const d = toInstant(f[field], f.tz);
    if (d) body[key] = d.toISO();
    else if (f[field] && !skip.has(field)) {
      issues.push({ field, message: 'must be a date and time' });
      skip.add(field);
    }
  }
  let input: CreateGrantInput | null = null;
  const schema = createGrantSchema(ctx.config, new Date());
  try {
    input = validate(schema, body);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    issues.push(...err.fields.filter((i) => !skip.has(formField(i.field))));
    // zod skips the schema's cross-field time checks while another field is bad; run them on
    // the times alone (same schema, the other fields stood in for) so every error shows at once.
    const times = schema.safeParse({ ...TIME_ONLY, startAt: body.startAt, endAt: body.endAt });
    for (const i of times.success ? [] : times.error.issues) {
      const field = String(i.path[0] ?? '');
      if ((field === 'startAt' || field === 'endAt') && !skip.has(formField(field)) && !issues.some((j) => formField(j.field) === formField(field))) issues.push({ field, message: i.message });
    }
  }
  const matches = f.endpoint ? await findEndpoints(ctx.c, f.endpoint) : [];
  const e = matches.length === 1 ? matches[0]! : null;
  if (f.endpoint) {
    if (matches.length > 1) issues.push({ field: 'endpoint', message: ambiguous(f.endpoint, matches) });
    else if (!e) issues.push({ field: 'endpoint', message: 'unknown endpoint' });
    else if ((GROUPS as readonly string[]).includes(f.group) && !osHonours(e.os, f.group as Group)) issues.push({ field: 'group', message: groupReason(e.os, f.group) });
    else if (input) issues.push(...(await elevationIssues(ctx, input, [e])));
  }
  return { input: issues.length ? null : input, endpoint: e, errors: formErrors(issues) };
}

export const groupReason = (os: OperatingSystem, group: string) => `${OS_LABEL[os]} endpoints have no "${group}" group`;

/** The group choices for an endpoint's OS: disabled with the reason when the OS cannot honour one. */
export function groupChoices(os: OperatingSystem | null, selected: string) {
  return GROUPS.map((g) => ({
    value: g,
    checked: g === selected,
    allowedOs: Object.entries(GROUPS_BY_OS).filter(([, gs]) => gs.includes(g)).map(([o]) => o).join(' '),
    disabledReason: os && !osHonours(os, g) ? groupReason(os, g) : null,
  }));
}

/** Maps API field errors (from createGrants) onto the form's fields. */
export function formErrors(fields: FieldIssue[]): FieldErrors {
  const errors: FieldErrors = {};
  for (const i of fields) (errors[formField(i.field)] ??= []).push(i.message.replace('startAt', 'the access start'));
  return errors;
}
