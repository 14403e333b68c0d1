/**
 * Server-side SMTP. The credentials an agent hands over live only in this
 * process's memory, inside the retry loop, until the mail is sent or access
 * ends; nothing here writes them anywhere.
 *
 * Why `MailerCtx` rather than the server's Ctx: the Ctx holds this mailer, so
 * taking it (or a command that takes it) would make an import cycle. A Ctx is a
 * MailerCtx, and what the mailer needs lives in modules that take no Ctx.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { renderEmail, type EmailVars } from '../../mail/render.ts';
import { RetryLoops } from '../../mail/retryLoops.ts';
import { sendMail } from '../../mail/smtp.ts';
import { recordDelivery } from '../commands/delivery.ts';
import type { ServerConfig } from '../config.ts';
import type { Collections, GrantDoc } from '../store/collections.ts';
import type { EndpointCache } from '../store/endpoints.ts';
import { requesterLabel } from './requester.ts';
import { serverPolicy, toSmtpSettings } from './serverSmtp.ts';

/** What the mailer uses of the server's context. */
export interface MailerCtx {
  config: Pick<ServerConfig, 'templatesDir' | 'secretKey'>;
  c: Collections;
  endpointCache: Pick<EndpointCache, 'get'>;
  log: Logger;
}

export class ServerMailer {
  private loops = new RetryLoops();

  constructor(private readonly ctx: MailerCtx) {}

  /** Starts sending in the background; a newer call for the same grant replaces an older one. */
  sendCredentials(g: GrantDoc, username: string, password: string): void {
    const send = async () => {
      const os = (await this.ctx.endpointCache.get(g.endpointId))?.os ?? 'linux';
      const settings = await this.settings();
      const requestedBy = requesterLabel(g.createdBy);
      const vars = {
        endpoint: g.hostname,
        os,
        username,
        password,
        email: g.email,
        start: g.startAt,
        end: g.endAt,
        ...(requestedBy ? { requestedBy } : {}),
        ...(settings.organisation ? { organisation: settings.organisation } : {}),
      };
      const mail = renderEmail('credentials', vars, this.renderOpts(settings.timeZone));
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
    const username = g.username ?? g.account;
    if (!username) return;
    const group = g.operation === 'elevate-account' ? { group: g.group } : {};
    await this.tryFew(g._id, g.email, 'access-ended', (organisation) => ({ endpoint: g.hostname, username, email: g.email, reason, end: new Date(), ...group, ...organisation }));
  }

  /** An access request's notice (commands/requestNotices.ts) to `to` (best effort, a few tries). */
  async sendRequestNotice<K extends 'request-pending' | 'request-decided'>(requestId: string, to: string, kind: K, vars: Omit<EmailVars<K>, 'organisation' | 'email'>): Promise<void> {
    await this.tryFew(requestId, to, kind, (organisation) => ({ ...vars, email: to, ...organisation }) as EmailVars<K>);
  }

  /** elevate-account: tells the end user their own account is elevated until the end (best effort). */
  async sendElevated(g: GrantDoc): Promise<void> {
    const requestedBy = requesterLabel(g.createdBy);
    await this.tryFew(g._id, g.email, 'elevated', (organisation) => ({
      endpoint: g.hostname, username: g.account ?? '', email: g.email, group: g.group, start: g.startAt, end: g.endAt,
      endAction: g.endAction ?? 'logoff', passwordlessSudo: g.passwordlessSudo ?? false, ...(requestedBy ? { requestedBy } : {}), ...organisation,
    }));
  }

  /** `id`: the grant's or request's, for the log. */
  private async tryFew<K extends 'access-ended' | 'elevated' | 'request-pending' | 'request-decided'>(id: string, to: string, kind: K, vars: (organisation: { organisation?: string }) => EmailVars<K>): Promise<void> {
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const settings = await this.settings();
        const mail = renderEmail(kind, vars(settings.organisation ? { organisation: settings.organisation } : {}), this.renderOpts(settings.timeZone));
        await sendMail(settings, { to, ...mail });
        return;
      } catch (err) {
        this.ctx.log.warn({ id, err: (err as Error).message }, `${kind} email failed`);
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
