/**
 * Gets fresh credentials to the end user: by the endpoint's own SMTP (Agent
 * Settings), or handed to the server for server-side SMTP. Retries with
 * backoff until access ends. The password lives only in the retry loop's
 * closure: never in the state file, a log line or a report.
 */
import type { Logger } from 'pino';
import type { EmailVars } from '../mail/render.ts';
import { RetryLoops } from '../mail/retryLoops.ts';
import type { OperatingSystem } from '../protocol/groups.ts';
import type { CredentialSink, DeliveryResult } from './sink.ts';
import type { ServerClient } from './client.ts';
import { fqdnOf, type NameResolver } from './fqdn.ts';
import type { SettingsStore } from './settings.ts';
import type { GrantRecord } from './state.ts';

export interface DeliveryOptions {
  hostname: string;
  os: OperatingSystem;
  templatesDir?: string;
  /** For the FQDN in the ssh hint; node's resolver by default. */
  resolver?: NameResolver;
  /** Called after each attempt, so the policy layer can record and report it. */
  outcome(grantId: string, result: DeliveryResult): void;
}

export class EmailDelivery implements CredentialSink {
  private loops = new RetryLoops();

  constructor(
    private readonly settings: SettingsStore,
    private readonly client: ServerClient,
    private readonly log: Logger,
    private readonly opts: DeliveryOptions,
  ) {}

  deliver(r: GrantRecord, password: string): void {
    const id = r.plan.grantId;
    const { serverSideSmtp } = r.plan;
    const send = () => (serverSideSmtp ? this.client.handOver({ grantId: id, username: r.username, password }) : this.sendCredentials(r, password));
    this.loops.start(id, Date.parse(r.plan.endAt), send, {
      done: () => this.opts.outcome(id, { ok: true, via: serverSideSmtp ? 'server' : 'endpoint' }),
      failed: (error, attempt) => {
        this.log.warn({ grantId: id, attempt, error }, 'credentials not delivered yet, will retry');
        // A server that cannot be reached is not a mail failure; only SMTP attempts are reported.
        if (!serverSideSmtp) this.opts.outcome(id, { ok: false, error });
      },
    });
  }

  isActive(grantId: string): boolean {
    return this.loops.isActive(grantId);
  }

  cancel(grantId: string): void {
    this.loops.cancel(grantId);
  }

  /** Tells the end user access is over; server-side SMTP grants get it from the server. */
  async ended(r: GrantRecord): Promise<void> {
    if (r.plan.serverSideSmtp) return;
    const group = r.plan.operation === 'elevate-account' ? { group: r.plan.group } : {};
    const vars = { endpoint: this.opts.hostname, username: r.username, email: r.plan.email, reason: r.revoked ? ('revoked' as const) : ('expired' as const), end: new Date(), ...group };
    await this.sendWith('access-ended', vars).catch((err: Error) => this.log.warn({ grantId: r.plan.grantId, err: err.message }, 'access-ended email failed'));
  }

  /** elevate-account: the person's own account is elevated (no password); server-side SMTP grants get it from the server. */
  async elevated(r: GrantRecord): Promise<void> {
    if (r.plan.serverSideSmtp) return;
    const { plan } = r;
    const vars = {
      endpoint: this.opts.hostname, username: r.username, email: plan.email, group: plan.group, start: new Date(plan.startAt), end: new Date(plan.endAt),
      endAction: plan.endAction, passwordlessSudo: plan.passwordlessSudo, ...(plan.requestedBy ? { requestedBy: plan.requestedBy } : {}),
    };
    await this.sendWith('elevated', vars).catch((err: Error) => this.log.warn({ grantId: plan.grantId, err: err.message }, 'elevated email failed'));
  }

  private async sendCredentials(r: GrantRecord, password: string): Promise<void> {
    const { plan } = r;
    // At send time, so a machine renamed or joined to a domain since enrollment is named right.
    const sshHost = this.opts.os === 'linux' ? await fqdnOf(this.opts.hostname, this.opts.resolver) : undefined;
    return this.sendWith('credentials', {
      endpoint: this.opts.hostname,
      os: this.opts.os,
      username: r.username,
      password,
      email: plan.email,
      start: new Date(plan.startAt),
      end: new Date(plan.endAt),
      ...(plan.requestedBy ? { requestedBy: plan.requestedBy } : {}),
      ...(sshHost ? { sshHost } : {}),
    });
  }

  private async sendWith<K extends 'credentials' | 'access-ended' | 'elevated'>(kind: K, vars: EmailVars<K>): Promise<void> {
    const smtp = this.settings.smtp();
    if (!smtp) throw new Error('no SMTP settings in the Agent Settings policy');
    // Imported on demand: handlebars, luxon and nodemailer would otherwise sit in every idle agent.
    const [{ renderEmail }, { sendMail }] = await Promise.all([import('../mail/render.ts'), import('../mail/smtp.ts')]);
    const all = { ...vars, ...(smtp.organisation ? { organisation: smtp.organisation } : {}) } as EmailVars<K>;
    const mail = renderEmail(kind, all, { timeZone: smtp.timeZone ?? 'UTC', ...(this.opts.templatesDir ? { overrideDir: this.opts.templatesDir } : {}) });
    await sendMail(smtp, { to: (vars as { email: string }).email, ...mail });
  }
}
