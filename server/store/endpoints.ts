import type { Collections, EndpointDoc } from './collections.ts';

/**
 * An endpoint by id, else by hostname. Two lookups rather than one `$or`:
 * FerretDB uses the _id index only for a plain _id match.
 */
export async function findEndpoint(c: Collections, ref: string): Promise<EndpointDoc | null> {
  return (await c.endpoints.findOne({ _id: ref })) ?? (await c.endpoints.findOne({ hostname: ref }));
}
