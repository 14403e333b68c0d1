/** What `jit` prints for a person (times in their own time zone). */
import type { LocalGrant, RequestView } from '../../protocol/local.ts';

const clock = (iso: string) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** "1 h 59 min", "4 min 10 s", "12 s". */
export function timeLeft(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

export function describeGrant(g: LocalGrant, now: number): string {
  const what = g.operation === 'elevate-account' ? `${g.group} for your account ${g.account}` : `${g.group} for the temporary account ${g.account}`;
  const atEnd = g.atEnd === 'logoff' ? 'you will be logged off' : 'you are told, your sessions go on';
  const when =
    g.state === 'waiting' ? `starts ${clock(g.startAt)}, ends ${clock(g.endAt)}` :
    g.state === 'active' ? `ends ${clock(g.endAt)}, in ${timeLeft(Date.parse(g.endAt) - now)}; at the end ${atEnd}` :
    'ending now';
  return `  ${what}: ${g.state}, ${when}\n    grant ${g.grantId}`;
}


/** A request as filed or as it stands: what was decided, by which rule, and the access it gave. */
export function describeRequest(r: RequestView): string {
  const rule = `the rule "${r.rule.name}"`;
  const asked = `${r.group} for ${r.minutes} min`;
  switch (r.state) {
    case 'approved': {
      const by = r.rule.action === 'auto-approve' && !r.note ? `by ${rule}` : 'by an approver';
      const window = r.grant?.startAt && r.grant.endAt ? `: from ${clock(r.grant.startAt)} until ${clock(r.grant.endAt)}` : '';
      return `Approved ${by}: ${r.group}${window}.\n  request ${r.id}${r.grant ? `, grant ${r.grant.id}` : ''}`;
    }
    case 'pending':
      return `Waiting for an approver (${rule}): ${asked}. It expires ${clock(r.expiresAt)} if nobody decides.\n  request ${r.id}`;
    case 'denied':
      return `Denied${r.note ? `: ${r.note}` : ''}.\n  request ${r.id}`;
    default:
      return `${r.state[0]!.toUpperCase()}${r.state.slice(1)}: ${asked}.\n  request ${r.id}`;
  }
}

/** One line of `jit status`'s requests. */
export function requestLine(r: RequestView): string {
  const more = r.state === 'pending' ? ` (the rule "${r.rule.name}"), expires ${clock(r.expiresAt)}` : r.note ? `: ${r.note}` : '';
  return `  ${r.group} for ${r.minutes} min: ${r.state}${more}\n    request ${r.id}`;
}

/** "90m", "2h", "1h30m", "45" (minutes) → minutes; null if not a duration. */
export function parseDuration(s: string): number | null {
  const m = /^(?:(\d+)h)?(?:(\d+)m?)?$/.exec(s.trim());
  if (!m || (!m[1] && !m[2])) return null;
  const minutes = Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
  return minutes > 0 ? minutes : null;
}
