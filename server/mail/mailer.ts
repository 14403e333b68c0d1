/**
 * Server-side SMTP. The credentials an agent hands over live only in this
 * process's memory, inside the retry loop, until the mail is sent or access
 * ends; nothing here writes them anywhere.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { renderEmail } from '../../mail/render.ts';
import { RetryLoops } from '../../mail/retryLoops.ts';
import { sendMail } from '../../mail/smtp.ts';
import { recordDelivery } from '../commands/delivery.ts';
import { serverPolicy, toSmtpSettings } from '../commands/smtpPolicies.ts';
import type { Ctx } from '../context.ts';
import type { GrantDoc } from '../store/collections.ts';

export class ServerMailer {
  private loops = new RetryLoops();

  constructor(private readonly ctx: Ctx) {}

  /** Starts sending in the background; a newer call for the same grant replaces an older one. */
  sendCredentials(g: GrantDoc, username: string, password: string): void {
    const send = async () => {
      const os = (await this.ctx.endpointCache.get(g.endpointId))?.os ?? 'linux';
      const settings = await this.settings();
      const mail = renderEmail('credentials', { endpoint: g.hostname, os, username, password, email: g.email, start: g.startAt, end: g.endAt }, this.renderOpts(settings.timeZone));
      await sendMail(settings, { to: g.email, ...mail });
    };
    this.loops.start(g._id, g.endAt.getTime(), send, {
      done: () => recordDelivery(this.ctx, g._id, { ok: true }, 'server', 'system'),
      failed: async (error, attempt) => {
        await recordDelivery(this.ctx, g._id, { ok: false, error }, 'server', 'system');
        this.ctx.log.warn({ grantId: g._id, attempt, error }, 'credentials email failed, will retry');
      },
    });
  }

  /** Tells the end user their access is over (best effort, a few tries). */
  async sendAccessEnded(g: GrantDoc, reason: 'expired' | 'revoked'): Promise<void> {
    if (!g.username) return;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const settings = await this.settings();
        const mail = renderEmail('access-ended', { endpoint: g.hostname, username: g.username, email: g.email, reason, end: new Date() }, this.renderOpts(settings.timeZone));
        await sendMail(settings, { to: g.email, ...mail });
        return;
      } catch (err) {
        this.ctx.log.warn({ grantId: g._id, err: (err as Error).message }, 'access-ended email failed');
        await sleep(1000 * attempt);
      }
    }
  }

  cancel(grantId: string): void {
    this.loops.cancel(grantId);
  }

  stop(): void {
    this.loops.cancelAll();
  }

  private async settings() {
    const doc = await serverPolicy(this.ctx);
    if (!doc) throw new Error('server-side SMTP is not configured');
    return toSmtpSettings(this.ctx, doc);
  }

  private renderOpts(timeZone: string) {
    return { timeZone, ...(this.ctx.config.templatesDir ? { overrideDir: this.ctx.config.templatesDir } : {}) };
  }
}
