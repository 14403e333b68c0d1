/**
 * Endpoint tags (domain/tags.ts): set by admins, replaced as a whole, audited
 * (`endpoint.tags-changed`, with the list before and after). Request rules match them.
 */
import type { Ctx } from '../context.ts';
import { apiError } from '../errors.ts';
import { audit } from '../store/audit.ts';
import type { EndpointDoc } from '../store/collections.ts';
import { findEndpoint } from '../store/endpoints.ts';

/** The endpoint `ref` names (id or hostname): 404 endpoint.not_found, 400 for a hostname several share. */
export async function endpointByRef(ctx: Pick<Ctx, 'c'>, ref: string, field = 'id'): Promise<EndpointDoc> {
  const e = await findEndpoint(ctx.c, ref, field);
  if (!e) throw apiError('endpoint.not_found');
  return e;
}

/** Replaces the endpoint's tags (already checked and lower-cased: schemas/endpoints.ts). */
export async function setEndpointTags(ctx: Ctx, ref: string, tags: string[], actor: string): Promise<EndpointDoc> {
  const e = await endpointByRef(ctx, ref);
  await ctx.c.endpoints.updateOne({ _id: e._id }, tags.length ? { $set: { tags } } : { $unset: { tags: '' } });
  await audit(ctx.c, { actor, type: 'endpoint.tags-changed', endpointId: e._id, detail: { hostname: e.hostname, tags, previous: e.tags ?? [] } });
  const { tags: _old, ...rest } = e;
  return { ...rest, ...(tags.length ? { tags } : {}) };
}
