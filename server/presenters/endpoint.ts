import type { EndpointDoc } from '../store/collections.ts';

/** An endpoint as the API shows it; the credential hash never leaves the server. */
export function presentEndpoint(e: EndpointDoc, online: boolean, activeGrants: number) {
  return {
    id: e._id,
    hostname: e.hostname,
    os: e.os,
    agentVersion: e.agentVersion,
    online,
    lastSeenAt: e.lastSeenAt.toISOString(),
    enrolledAt: e.enrolledAt.toISOString(),
    activeGrants,
    /** What its agent can do (its inventory), e.g. elevate-account. */
    capabilities: e.capabilities ?? [],
    /** The local accounts a person may be elevated in (not system, not ours), from its inventory. */
    accounts: (e.accounts ?? []).filter((a) => !a.system && !a.managed).map((a) => a.name),
    /** Set by admins; request rules may match them. */
    tags: e.tags ?? [],
  };
}
