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
  };
}
