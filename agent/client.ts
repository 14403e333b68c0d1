/**
 * The agent's side of the protocol: plain fetch against /agent/v1, every call
 * authenticated with the endpoint's own credential.
 */
import {
  AgentSettings,
  API_PREFIX,
  type Inventory,
  EnrollResponse,
  PollResponse,
  type CredentialHandover,
  type EnrollRequest,
  type Report,
  type SmtpTestResult,
} from '../protocol/messages.ts';
import type { ForwardedAsk, RequestView } from '../protocol/local.ts';

/** The local channel's schemas, loaded on first use (not by every idle agent). */
const local = () => import('../protocol/local.ts');

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`server answered ${status}: ${body.slice(0, 300)}`);
  }

  /** The server's own words (errors.ts: message, and per field what is wrong), for a person to read. */
  get serverMessage(): string {
    try {
      const { error } = JSON.parse(this.body) as { error: { message: string; fields?: { field: string; message: string }[] } };
      return error.fields?.length ? `${error.message} ${error.fields.map((f) => `${f.field}: ${f.message}`).join('; ')}` : error.message;
    } catch {
      return this.message;
    }
  }
}

async function call(url: string, init: RequestInit): Promise<unknown> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) throw new HttpError(res.status, text);
  return text ? JSON.parse(text) : null;
}

const JSON_TYPE = { 'content-type': 'application/json' };

export async function enrollAgent(serverUrl: string, req: EnrollRequest): Promise<EnrollResponse> {
  const init = { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(req) };
  return EnrollResponse.parse(await call(`${serverUrl}${API_PREFIX}/enroll`, init));
}

export class ServerClient {
  constructor(
    private readonly serverUrl: string,
    private readonly credential: string,
  ) {}

  private send(path: string, init: RequestInit & { timeoutMs: number }): Promise<unknown> {
    const headers = { authorization: `Bearer ${this.credential}`, ...(init.headers as Record<string, string>) };
    return call(`${this.serverUrl}${API_PREFIX}${path}`, { ...init, headers, signal: AbortSignal.any([AbortSignal.timeout(init.timeoutMs), ...(init.signal ? [init.signal] : [])]) });
  }

  /** Long-poll: returns pending instructions, waiting up to `waitSeconds` for one. */
  async poll(waitSeconds: number, signal: AbortSignal): Promise<PollResponse> {
    const res = await this.send(`/instructions?wait=${waitSeconds}`, { method: 'GET', signal, timeoutMs: (waitSeconds + 15) * 1000 });
    return PollResponse.parse(res);
  }

  async settings(): Promise<AgentSettings> {
    return AgentSettings.parse(await this.send('/settings', { method: 'GET', timeoutMs: 15_000 }));
  }

  /** Server-side SMTP: the server sends the credentials and keeps them in memory only. */
  async handOver(h: CredentialHandover): Promise<void> {
    await this.send('/credentials', { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(h), timeoutMs: 15_000 });
  }

  async smtpTestResult(id: string, r: SmtpTestResult): Promise<void> {
    await this.send(`/smtp-tests/${encodeURIComponent(id)}`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(r), timeoutMs: 15_000 });
  }

  async ack(ids: string[]): Promise<void> {
    await this.send('/acks', { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ ids }), timeoutMs: 15_000 });
  }

  async inventory(inv: Inventory): Promise<void> {
    await this.send('/inventory', { method: 'PUT', headers: JSON_TYPE, body: JSON.stringify(inv), timeoutMs: 15_000 });
  }

  /** `jit request`: files a request for the account the agent proved (agent/local/handlers.ts). */
  async fileRequest(ask: ForwardedAsk): Promise<RequestView> {
    const { RequestView } = await local();
    return RequestView.parse(await this.send('/requests', { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(ask), timeoutMs: 15_000 }));
  }

  /** A request this endpoint filed for `account`, as it stands. */
  async requestState(id: string, account: string): Promise<RequestView> {
    const q = `?account=${encodeURIComponent(account)}`;
    const { RequestView } = await local();
    return RequestView.parse(await this.send(`/requests/${encodeURIComponent(id)}${q}`, { method: 'GET', timeoutMs: 15_000 }));
  }

  /** `jit status`: the account's open and recently decided requests on this endpoint (a short wait: status must not hang). */
  async requestsOf(account: string): Promise<RequestView[]> {
    const { RequestView } = await local();
    const res = await this.send(`/requests?account=${encodeURIComponent(account)}`, { method: 'GET', timeoutMs: 3_000 });
    return RequestView.array().parse((res as { requests: unknown }).requests);
  }

  /** Sends reports; returns the ids the server has taken. */
  async report(reports: Report[]): Promise<string[]> {
    const res = await this.send('/reports', { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ reports }), timeoutMs: 15_000 });
    return (res as { accepted: string[] }).accepted;
  }
}
