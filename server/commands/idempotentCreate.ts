/**
 * Grant creates that are safe to repeat. Why: a create is not idempotent (each
 * one makes new grants, and on the endpoint a new temporary administrator), and
 * a client that got no answer, or a 503 after some of it was stored, cannot know
 * whether to try again. With a key (the API's `Idempotency-Key` header, the
 * wizard's hidden form token) the first request records the grants it makes
 * before it stores them; a repeat with the same key gets those grants (completing
 * whatever the first one could not store) and makes no new ones. The same key
 * with another request is refused (422 idempotency.key_reused). Keys are per
 * caller and kept for KEY_TTL_HOURS.
 *
 * Why a record by `_id`: the insert of a taken `_id` fails (E11000) atomically on
 * FerretDB as on MongoDB, so of two racing first requests one records its plan
 * and the other takes it.
 */
import { createHash } from 'node:crypto';
import type { Ctx } from '../context.ts';
import { apiError, invalid } from '../errors.ts';
import type { GrantDoc } from '../store/collections.ts';
import { writeGrants } from './createGrants.ts';

export const KEY_TTL_HOURS = 24;
const KEY = /^[\x21-\x7e]{1,200}$/;

/** The key as sent, checked; null when there is none. */
export function idempotencyKey(raw: string | undefined, field = 'Idempotency-Key'): string | null {
  if (raw === undefined || raw === '') return null;
  if (!KEY.test(raw)) throw invalid([{ field, message: 'must be 1-200 visible ASCII characters' }]);
  return raw;
}

/**
 * Runs a create once per (actor, key). `request` is what identifies the request
 * as sent (the body, the form); `plan` checks it and plans its grants without
 * storing anything (planGrants); `beforeWrites` is called before the first write.
 */
export async function createGrantsOnce(ctx: Ctx, actor: string, key: string, request: unknown, plan: () => Promise<GrantDoc[]>, beforeWrites: () => void = () => {}): Promise<GrantDoc[]> {
  const _id = sha256(`${actor}\n${key}`);
  const fingerprint = sha256(stableJson(request));
  for (;;) {
    const seen = await ctx.c.createRequests.findOne({ _id });
    const fresh = seen && seen.createdAt.getTime() > Date.now() - KEY_TTL_HOURS * 3_600_000;
    if (seen && fresh) {
      if (seen.fingerprint !== fingerprint) throw apiError('idempotency.key_reused');
      beforeWrites();
      return writeGrants(ctx, seen.grants, true);
    }
    const grants = await plan();
    beforeWrites();
    if (seen) await ctx.c.createRequests.deleteOne({ _id, createdAt: seen.createdAt });
    try {
      await ctx.c.createRequests.insertOne({ _id, fingerprint, grants, createdAt: new Date() });
    } catch (err) {
      // The same request racing this one recorded its plan first: take that.
      if ((err as { code?: number }).code === 11000) continue;
      throw err;
    }
    await forgetOld(ctx);
    return writeGrants(ctx, grants);
  }
}

/** Drops records past their time (a scan on FerretDB, once per keyed create). */
async function forgetOld(ctx: Ctx): Promise<void> {
  await ctx.c.createRequests.deleteMany({ createdAt: { $lt: new Date(Date.now() - KEY_TTL_HOURS * 3_600_000) } }).catch((err: unknown) => {
    ctx.log.warn({ err }, 'could not drop old idempotency records');
  });
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** JSON with object keys sorted, so the same request gives the same text. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
