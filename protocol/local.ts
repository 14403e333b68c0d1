/**
 * The local channel between the `jit` command (run by the person at the endpoint, no root) and
 * the agent: one Unix socket, newline-delimited JSON, one request per connection.
 *
 *   agent → jit   {"challenge": "<64 hex>"}
 *   jit           creates the file <proof dir>/<challenge> (exclusively; its owner is the caller)
 *   jit → agent   {"op": "status"} | {"op": "end", "grantId": "…"} | {"op": "request", "ask": {…}} | {"op": "request-state", "requestId": "…"}
 *   agent → jit   {"ok": true, …} | {"ok": false, "code": "…", "message": "…"}
 *
 * Who asks is what the OS says owns the proof file, never what the client claims: the proof
 * folder is root's, sticky and not listable (mode 1733), so nobody can see, move or remove
 * another user's proof, and a name is the challenge of one connection (docs/endpoint-users.md).
 */
import { z } from 'zod';
import { GROUPS } from './groups.ts';
import { END_ACTIONS, OPERATIONS } from './messages.ts';

/** `jit request`: for the caller's own account on this machine (the agent adds the account). */
export const AccessAsk = z
  .object({
    group: z.enum(GROUPS),
    minutes: z.number().int().min(1).max(525_600),
    reason: z.string().max(500).default(''),
  })
  .strict();
export type AccessAsk = z.infer<typeof AccessAsk>;

/** What the agent sends the server for `jit request` (POST /agent/v1/requests): the ask and the proven account. */
export const ForwardedAsk = AccessAsk.extend({ account: z.string().min(1).max(256) }).strict();
export type ForwardedAsk = z.infer<typeof ForwardedAsk>;

export const LocalRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('status') }).strict(),
  z.object({ op: z.literal('end'), grantId: z.string().min(1).max(100) }).strict(),
  z.object({ op: z.literal('request'), ask: AccessAsk }).strict(),
  z.object({ op: z.literal('request-state'), requestId: z.string().min(1).max(100) }).strict(),
]);
export type LocalRequest = z.infer<typeof LocalRequest>;

/** One of the caller's grants on this machine, as `jit status` shows it. */
export const LocalGrant = z.object({
  grantId: z.string(),
  operation: z.enum(OPERATIONS),
  account: z.string(),
  group: z.string(),
  startAt: z.iso.datetime(),
  endAt: z.iso.datetime(),
  /** waiting (before its start), active, ending (its removal is under way). */
  state: z.enum(['waiting', 'active', 'ending']),
  /** What happens to the caller's sessions at the end. */
  atEnd: z.enum(END_ACTIONS),
});
export type LocalGrant = z.infer<typeof LocalGrant>;

/** Stable codes: what `jit` maps to its exit codes (agent/jit.ts). */
export const LOCAL_ERRORS = ['bad_request', 'not_proven', 'not_found', 'ended', 'refused', 'unreachable'] as const;

/** A request as the server shows it to the endpoint (the fields `jit` prints; more may come). */
export const RequestView = z.looseObject({
  id: z.string(),
  state: z.string(),
  group: z.string(),
  minutes: z.number(),
  rule: z.looseObject({ name: z.string(), action: z.string() }),
  note: z.string().nullable(),
  grant: z.looseObject({ id: z.string(), startAt: z.string().nullable(), endAt: z.string().nullable(), state: z.string().nullable() }).nullable(),
  expiresAt: z.string(),
});
export type RequestView = z.infer<typeof RequestView>;

export const LocalAnswer = z.union([
  z.object({ ok: z.literal(true), request: RequestView }).strict(),
  z
    .object({
      ok: z.literal(true),
      user: z.string(),
      hostname: z.string(),
      now: z.iso.datetime(),
      grants: z.array(LocalGrant),
      /** Open and recently decided requests; null when the server could not be asked (status works without it). */
      requests: z.array(RequestView).nullable(),
    })
    .strict(),
  z.object({ ok: z.literal(true), ended: LocalGrant }).strict(),
  z.object({ ok: z.literal(false), code: z.enum(LOCAL_ERRORS), message: z.string() }).strict(),
]);
export type LocalAnswer = z.infer<typeof LocalAnswer>;

export const Challenge = z.object({ challenge: z.string().regex(/^[0-9a-f]{64}$/) }).strict();
