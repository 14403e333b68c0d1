/**
 * The request row of the bench: a person files a request (`POST /api/v1/requests`), a rule
 * auto-approves it, the grant goes out, and the account is in place on the agent. Measured from
 * the request's sending to the agent's `enabled` (the grant starts when approved, so it is
 * enabled at once), and the API's answer time. `temporary-access` requests: the fleet's agents
 * record their accounts in memory and do not elevate existing ones.
 */
export interface RequestServer {
  url: string;
  adminToken: string;
  /** A requester's personal API token (bench/serverProc.ts makes the user). */
  requesterToken: string;
}

export interface RequestProbe {
  requests: number;
  failed: number;
  /** Why requests failed: HTTP status and error id, or the state a 201 had, or the exception. */
  failures: Record<string, number>;
  notEnabled: number;
  apiMs: { p50: number | null; p99: number | null };
  filedToEnabledMs: { p50: number | null; p99: number | null };
}

interface Filed {
  grantId: string;
  sentAt: number;
  answeredAt: number;
}

/** How long a probe request's access lasts (the smallest a request can ask for). */
export const REQUEST_MINUTES = 1;
const RULES = { rules: [{ name: 'bench: auto-approve', action: 'auto-approve' }] };

export async function installRules(s: RequestServer): Promise<void> {
  const res = await fetch(`${s.url}/api/v1/request-rules`, { method: 'PUT', headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(RULES) });
  if (res.status !== 200) throw new Error(`request rules not installed: ${res.status} ${await res.text()}`);
}

async function fileOne(s: RequestServer, endpoint: string, failures: Record<string, number>): Promise<Filed | null> {
  const fail = (why: string) => void (failures[why] = (failures[why] ?? 0) + 1);
  const sentAt = Date.now();
  try {
    const res = await fetch(`${s.url}/api/v1/requests`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.requesterToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ endpoint, operation: 'temporary-access', group: 'Administrators', minutes: REQUEST_MINUTES, reason: 'bench: measuring the request path' }),
      signal: AbortSignal.timeout(60_000),
    });
    const answeredAt = Date.now();
    const body = (await res.json()) as { state?: string; grant?: { id: string } | null; error?: { id: string } };
    if (res.status === 201 && body.state === 'approved' && body.grant) return { grantId: body.grant.id, sentAt, answeredAt };
    fail(res.status === 201 ? `201 ${body.state}` : `${res.status} ${body.error?.id ?? ''}`);
    return null;
  } catch (err) {
    fail((err as Error).name);
    return null;
  }
}

/**
 * `count` requests at `perSecond` on distinct endpoints (one open request per endpoint and group
 * is the rule, and these are approved at once anyway), then waits until each is enabled on its
 * agent (`enabledAt(grantId)`) or 30 s have passed.
 */
export async function requestProbe(
  s: RequestServer, endpoints: string[], count: number, perSecond: number,
  enabledAt: (grantId: string) => number | undefined, pct: (xs: number[], p: number) => number | null,
): Promise<RequestProbe> {
  const t0 = Date.now();
  const pending: Promise<Filed | null>[] = [];
  const failures: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / perSecond;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    pending.push(fileOne(s, endpoints[i % endpoints.length]!, failures));
  }
  const filed = (await Promise.all(pending)).filter((f): f is Filed => f !== null);
  const until = Date.now() + 30_000;
  while (Date.now() < until && filed.some((f) => enabledAt(f.grantId) === undefined)) await new Promise((r) => setTimeout(r, 250));
  const enabled = filed.flatMap((f) => {
    const at = enabledAt(f.grantId);
    return at === undefined ? [] : [at - f.sentAt];
  });
  const api = filed.map((f) => f.answeredAt - f.sentAt);
  return {
    requests: count,
    failed: count - filed.length,
    failures,
    notEnabled: filed.length - enabled.length,
    apiMs: { p50: pct(api, 50), p99: pct(api, 99) },
    filedToEnabledMs: { p50: pct(enabled, 50), p99: pct(enabled, 99) },
  };
}
