import type { Collections, EndpointDoc } from './collections.ts';

/**
 * An endpoint by id, else by hostname. Two lookups rather than one `$or`:
 * FerretDB uses the _id index only for a plain _id match.
 */
export async function findEndpoint(c: Collections, ref: string): Promise<EndpointDoc | null> {
  return (await c.endpoints.findOne({ _id: ref })) ?? (await c.endpoints.findOne({ hostname: ref }));
}

/**
 * Endpoint records by id, in memory, for authenticating agent requests (every
 * poll does). Safe to keep: a record does not change after enrollment except
 * `lastSeenAt`, which Presence tracks, and endpoints are never deleted.
 */
export class EndpointCache {
  private byId = new Map<string, EndpointDoc>();

  constructor(private c: Collections) {}

  async get(id: string): Promise<EndpointDoc | null> {
    const cached = this.byId.get(id);
    if (cached) return cached;
    const e = await this.c.endpoints.findOne({ _id: id });
    if (e) this.byId.set(id, e);
    return e;
  }
}
