/**
 * What the `jit` command may ask the agent, for the OS account proven to be asking (channel.ts):
 * its own grants only, and requests for its own account on this machine (forwarded to the
 * server). A grant is the caller's when it elevates the caller's account, or when the caller is
 * logged in as the grant's temporary account.
 */
import type { LocalAnswer, LocalGrant, LocalRequest } from '../../protocol/local.ts';
import type { GrantRunner } from '../accounts.ts';
import { HttpError, type ServerClient } from '../client.ts';
import type { GrantRecord } from '../state.ts';
import type { LocalHandler } from './channel.ts';

const GONE: GrantRecord['step'][] = ['removed', 'failed'];

/** Account names compare in any letter case (Windows' do; Unix ones we make are lower case). */
const isCallers = (r: GrantRecord, account: string) => r.username.toLowerCase() === account.toLowerCase();

function present(r: GrantRecord, now: number): LocalGrant {
  const ending = r.removeNow || now >= Date.parse(r.plan.endAt) || !['planned', 'creating', 'created', 'enabled'].includes(r.step);
  return {
    grantId: r.plan.grantId,
    operation: r.plan.operation,
    account: r.username,
    group: r.plan.group,
    startAt: r.plan.startAt,
    endAt: r.plan.endAt,
    state: ending ? 'ending' : r.step === 'enabled' ? 'active' : 'waiting',
    atEnd: r.plan.operation === 'elevate-account' ? r.plan.endAction : 'logoff',
  };
}

/** The server's answer, or its refusal in its own words, or "unreachable". */
async function forward(call: () => Promise<LocalAnswer>): Promise<{ answer: LocalAnswer }> {
  try {
    return { answer: await call() };
  } catch (err) {
    if (err instanceof HttpError && err.status < 500) return { answer: { ok: false, code: err.status === 404 ? 'not_found' : 'refused', message: err.serverMessage } };
    return { answer: { ok: false, code: 'unreachable', message: `the jit-access server could not be reached (${(err as Error).message}); try again later` } };
  }
}

export function localHandler(runner: GrantRunner, client: ServerClient, hostname: string, now: () => number = Date.now): LocalHandler {
  return async (req: LocalRequest, account: string) => {
    if (req.op === 'request') return forward(async () => ({ ok: true, request: await client.fileRequest({ ...req.ask, account }) }));
    if (req.op === 'request-state') return forward(async () => ({ ok: true, request: await client.requestState(req.requestId, account) }));
    const mine = Object.values(runner.records()).filter((r) => !GONE.includes(r.step) && isCallers(r, account));
    if (req.op === 'status') {
      const t = now();
      const grants = mine.map((r) => present(r, t)).sort((a, b) => a.startAt.localeCompare(b.startAt));
      const requests = await client.requestsOf(account).catch(() => null);
      return { answer: { ok: true, user: account, hostname, now: new Date(t).toISOString(), grants, requests } };
    }
    const r = mine.find((g) => g.plan.grantId === req.grantId);
    if (!r) {
      // Another person's grant and no grant at all answer alike: nothing is told about others'.
      return { answer: { ok: false, code: 'not_found', message: `you have no grant ${req.grantId} on ${hostname}` } };
    }
    if (present(r, now()).state === 'ending') return { answer: { ok: false, code: 'ended', message: `grant ${req.grantId} is ending already` } };
    await runner.endByUser(r.plan.grantId, account);
    // The removal once the answer is out: its logoff may end the shell that asked.
    return { answer: { ok: true, ended: present(r, now()) }, after: () => void runner.runDue() };
  };
}
