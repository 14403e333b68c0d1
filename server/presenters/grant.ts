import type { AuditDoc, GrantDoc } from '../store/collections.ts';

/** What requestRevoke (commands/revokeGrant.ts) answers for a revoke the database did not take in time. */
export interface JournaledRevoke {
  requestedAt: string;
  agentConnected: boolean;
}

/** A grant as the API shows it. */
export function presentGrant(g: GrantDoc) {
  return {
    id: g._id,
    requestId: g.requestId,
    /** The access request whose approval made it (server/commands/decideRequest.ts), if any. */
    accessRequestId: g.accessRequestId ?? null,
    operation: g.operation,
    ...(g.operation === 'elevate-account' ? { account: g.account ?? null, endAction: g.endAction ?? 'logoff', wasMember: g.wasMember ?? null, endWarnings: (g.endWarnings ?? []).map((s) => new Date(g.endAt.getTime() - s * 1000).toISOString()) } : {}),
    passwordlessSudo: g.passwordlessSudo ?? false,
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
    emailDelivery:
      g.operation === 'elevate-account'
        ? null
        : { status: g.delivery.status, attempts: g.delivery.attempts, lastError: g.delivery.lastError ?? null, sentAt: g.delivery.sentAt?.toISOString() ?? null },
    createdBy: g.createdBy,
    createdAt: g.createdAt.toISOString(),
    updatedAt: g.updatedAt.toISOString(),
  };
}

/** An audit event; those that need words for people (`grant.never-enabled`) also get a `summary`. */
export function presentAuditEvent(e: AuditDoc) {
  const summary = summaryOf(e);
  return {
    id: e._id,
    at: e.at.toISOString(),
    actor: e.actor,
    type: e.type,
    grantId: e.grantId ?? null,
    endpointId: e.endpointId ?? null,
    detail: e.detail,
    ...(summary ? { summary } : {}),
  };
}

/**
 * The grant with its timeline. `neverEnabled` is the summary of its
 * `grant.never-enabled` event (why the user never got access), else null.
 */
export function presentGrantWithTimeline(g: GrantDoc, events: AuditDoc[]) {
  const timeline = events.map(presentAuditEvent);
  const neverEnabled = timeline.find((e) => e.type === 'grant.never-enabled')?.summary ?? null;
  return { ...presentGrant(g), neverEnabled, timeline };
}

function summaryOf(e: AuditDoc): string | null {
  return e.type === 'grant.never-enabled' ? neverEnabledSummary(e.detail) : null;
}

/** What the timeline says for a `grant.never-enabled` event (see commands/neverEnabled.ts). */
function neverEnabledSummary(detail: Record<string, unknown>): string {
  const u = detail.unresponsive as { from?: string; to?: string | null; serverStartedAt?: string } | null | undefined;
  if (!u?.from) return 'never enabled: the endpoint was heard from around the enable time but did not report enabling the account (see its reports)';
  const restart = u.serverStartedAt ? ` (the server itself started at ${u.serverStartedAt}, within that time)` : '';
  return u.to
    ? `never enabled: the endpoint was unresponsive from ${u.from} to ${u.to}${restart}`
    : `never enabled: the endpoint has been unresponsive since ${u.from}${restart}`;
}

/**
 * A revoke accepted while the database did not answer (202): journaled, and pushed to the
 * connected agent, or `pending` (the agent is offline: it gets it when the database answers).
 */
export function presentJournaledRevoke(grantId: string, r: JournaledRevoke) {
  return {
    grant: { id: grantId, state: 'revoking' as const },
    journaled: true,
    ...(r.agentConnected ? {} : { pending: true }),
    agentConnected: r.agentConnected,
    requestedAt: r.requestedAt,
    message: journaledRevokeMessage(r.agentConnected),
  };
}

export function journaledRevokeMessage(agentConnected: boolean): string {
  return agentConnected
    ? 'The database is unreachable: the revoke was sent to the endpoint and journaled on the server; it is recorded when the database is back.'
    : 'The database did not answer in time: the revoke was journaled on the server and is completed (recorded and sent to the endpoint, which is not connected now) as soon as the database answers.';
}
