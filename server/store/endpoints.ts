import { invalid } from '../errors.ts';
import type { Collections, EndpointDoc } from './collections.ts';
import { sameText } from './match.ts';

/**
 * Endpoints with this hostname, in any letter case (DNS names ignore it).
 * Enrollment keeps hostnames unique (commands/enrollment.ts); more than one
 * means records made before that rule.
 */
export function endpointsByHostname(c: Collections, hostname: string): Promise<EndpointDoc[]> {
  return c.endpoints.find({ hostname: sameText(hostname) }).toArray();
}

/**
 * Every endpoint `ref` names: the one with that id, else those with that
 * hostname. Two lookups rather than one `$or`: FerretDB uses the _id index
 * only for a plain _id match.
 */
export async function findEndpoints(c: Collections, ref: string): Promise<EndpointDoc[]> {
  const byId = await c.endpoints.findOne({ _id: ref });
  return byId ? [byId] : endpointsByHostname(c, ref);
}

/** Why a hostname several endpoints share cannot pick one. */
export const ambiguous = (ref: string, matches: EndpointDoc[]) =>
  `hostname ${JSON.stringify(ref)} matches ${matches.length} endpoints (${matches.map((e) => e._id).join(', ')}): use the endpoint id`;

/**
 * The one endpoint `ref` names, or null. A hostname several endpoints share
 * is refused with a 400 on `field`, listing their ids.
 */
export async function findEndpoint(c: Collections, ref: string, field = 'endpoint'): Promise<EndpointDoc | null> {
  const found = await findEndpoints(c, ref);
  if (found.length > 1) throw invalid([{ field, message: ambiguous(ref, found) }]);
  return found[0] ?? null;
}

/**
 * Endpoint records by id, in memory, for authenticating agent requests (every
 * poll does), and which endpoints hold each hostname, for enrollment. A record
 * changes after enrollment only in `lastSeenAt`, which Presence tracks, and
 * when the same machine enrolls again (new credential, agent version):
 * enrollment then calls `replaced`, so the old credential stops working at
 * once. Endpoints are never deleted. Why in memory: this process is the only
 * writer of endpoint records, and on FerretDB a lookup by hostname scans the
 * collection, which for every enrollment of a large fleet adds up.
 */
export class EndpointCache {
  private byId = new Map<string, EndpointDoc>();
  /** Bumped by `replaced`, so a read that began before the replacement cannot cache the old record. */
  private generation = new Map<string, number>();
  /** Lower-cased hostname → ids of the endpoints with it; read from the database on first use. */
  private hostnames: Promise<Map<string, Set<string>>> | null = null;

  constructor(private c: Collections) {}

  async get(id: string): Promise<EndpointDoc | null> {
    const cached = this.byId.get(id);
    if (cached) return cached;
    const gen = this.generation.get(id) ?? 0;
    const e = await this.c.endpoints.findOne({ _id: id });
    if (e && (this.generation.get(id) ?? 0) === gen) this.byId.set(id, e);
    return e;
  }

  /** The endpoints whose hostname is `hostname` in any letter case. */
  async holders(hostname: string): Promise<EndpointDoc[]> {
    const ids = (await this.hostnameIndex()).get(hostname.toLowerCase()) ?? new Set<string>();
    const docs = await Promise.all([...ids].map((id) => this.get(id)));
    return docs.filter((e): e is EndpointDoc => e !== null);
  }

  /** Call after a new record was stored. */
  async enrolled(e: EndpointDoc): Promise<void> {
    const index = await this.hostnameIndex();
    const key = e.hostname.toLowerCase();
    index.set(key, (index.get(key) ?? new Set()).add(e._id));
  }

  /** Call after the stored record was replaced (written first); its hostname differs at most in letter case. */
  replaced(e: EndpointDoc): void {
    this.generation.set(e._id, (this.generation.get(e._id) ?? 0) + 1);
    this.byId.set(e._id, e);
  }

  private hostnameIndex(): Promise<Map<string, Set<string>>> {
    if (this.hostnames) return this.hostnames;
    const load = (async () => {
      const index = new Map<string, Set<string>>();
      for await (const e of this.c.endpoints.find({}, { projection: { hostname: 1 } })) {
        const key = e.hostname.toLowerCase();
        index.set(key, (index.get(key) ?? new Set()).add(e._id));
      }
      return index;
    })();
    // A failed read is not kept: the next enrollment tries again.
    load.catch(() => this.hostnames === load && (this.hostnames = null));
    this.hostnames = load;
    return load;
  }
}
