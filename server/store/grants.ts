import type { Filter } from 'mongodb';
import type { GrantState } from '../domain/lifecycle.ts';
import { emailKey, type Collections, type GrantDoc } from './collections.ts';

/** What a grants list can be filtered by (the API and the console alike). */
export interface GrantQuery {
  state?: GrantState;
  /** Matched in any letter case. */
  email?: string;
  /** Endpoint id or hostname. */
  endpoint?: string;
  /** Access that overlaps [from, to]. */
  from?: Date;
  to?: Date;
}

export function grantFilter(q: GrantQuery): Filter<GrantDoc> {
  const filter: Filter<GrantDoc> = {};
  if (q.state) filter.state = q.state;
  if (q.email) filter.emailKey = emailKey(q.email);
  if (q.endpoint) filter.$or = [{ endpointId: q.endpoint }, { hostname: q.endpoint }];
  if (q.from) filter.endAt = { $gte: q.from };
  if (q.to) filter.startAt = { $lte: q.to };
  return filter;
}

/**
 * The grant, only if it belongs to `endpointId` (an agent may act on its own
 * grants only). Looked up by `_id` alone, the one filter FerretDB serves from
 * an index, and the owner checked here.
 */
export async function grantOf(c: Collections, grantId: string, endpointId: string): Promise<GrantDoc | null> {
  const g = await c.grants.findOne({ _id: grantId });
  return g?.endpointId === endpointId ? g : null;
}
