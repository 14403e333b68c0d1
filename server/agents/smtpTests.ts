import { randomUUID } from 'node:crypto';
import type { SmtpTestResult } from '../../protocol/messages.ts';
import type { AgentHub } from './hub.ts';

/**
 * "Test these settings" on an endpoint: the admin's request waits here while
 * the endpoint's next poll picks the test up and posts its result.
 */
export class SmtpTests {
  private pending = new Map<string, { endpointId: string; to?: string; resolve(r: SmtpTestResult): void }>();

  constructor(private readonly hub: AgentHub) {}

  /** Asks the endpoint to test its SMTP settings (and mail `to`); null when it does not answer within `ms`. */
  async run(endpointId: string, ms: number, to?: string): Promise<SmtpTestResult | null> {
    const id = randomUUID();
    const result = new Promise<SmtpTestResult | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), ms);
      this.pending.set(id, { endpointId, ...(to ? { to } : {}), resolve: (r) => (clearTimeout(timer), resolve(r)) });
    });
    this.hub.notify(endpointId);
    try {
      return await result;
    } finally {
      this.pending.delete(id);
    }
  }

  /** Tests waiting for this endpoint. */
  forEndpoint(endpointId: string): { id: string; to?: string }[] {
    return [...this.pending].filter(([, p]) => p.endpointId === endpointId).map(([id, p]) => ({ id, ...(p.to ? { to: p.to } : {}) }));
  }

  /** Takes an endpoint's answer; answers to other endpoints' tests are ignored. */
  complete(endpointId: string, id: string, r: SmtpTestResult): void {
    const p = this.pending.get(id);
    if (p?.endpointId === endpointId) p.resolve(r);
  }
}
