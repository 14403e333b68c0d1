import type { AuditDoc, GrantDoc } from '../store/collections.ts';

/** A grant as the API shows it. */
export function presentGrant(g: GrantDoc) {
  return {
    id: g._id,
    requestId: g.requestId,
    operation: g.operation,
    email: g.email,
    endpoint: { id: g.endpointId, hostname: g.hostname },
    group: g.group,
    startAt: g.startAt.toISOString(),
    enableAt: g.enableAt.toISOString(),
    endAt: g.endAt.toISOString(),
    serverSideSmtp: g.serverSideSmtp,
    state: g.state,
    reason: g.reason ?? null,
    username: g.username ?? null,
    emailDelivery: {
      status: g.delivery.status,
      attempts: g.delivery.attempts,
      lastError: g.delivery.lastError ?? null,
      sentAt: g.delivery.sentAt?.toISOString() ?? null,
    },
    createdBy: g.createdBy,
    createdAt: g.createdAt.toISOString(),
    updatedAt: g.updatedAt.toISOString(),
  };
}

export function presentAuditEvent(e: AuditDoc) {
  return {
    id: e._id,
    at: e.at.toISOString(),
    actor: e.actor,
    type: e.type,
    grantId: e.grantId ?? null,
    endpointId: e.endpointId ?? null,
    detail: e.detail,
  };
}

export function presentGrantWithTimeline(g: GrantDoc, events: AuditDoc[]) {
  return { ...presentGrant(g), timeline: events.map(presentAuditEvent) };
}
