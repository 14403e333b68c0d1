import type { Logger } from 'pino';
import type { AgentHub } from './agents/hub.ts';
import type { Presence } from './agents/presence.ts';
import type { SmtpTests } from './agents/smtpTests.ts';
import type { ServerMailer } from './mail/mailer.ts';
import type { ServerConfig } from './config.ts';
import type { Collections } from './store/collections.ts';
import type { EndpointCache } from './store/endpoints.ts';
import type { PolicyRevisions } from './store/policyRevisions.ts';
import type { SerialQueues } from './db/serialQueues.ts';

/** Job names the scheduler runs; see server/scheduler/jobs.ts. */
export type JobName = 'grant.enable' | 'grant.expire' | 'grant.verify';

/** The scheduler as commands see it: durable one-off jobs. */
export interface Scheduler {
  schedule(name: JobName, at: Date, data: { grantId: string; attempt?: number }): Promise<void>;
  /** Drops every job of a grant that has ended for good. */
  forget(grantId: string): Promise<void>;
  /** When the grants' `name` jobs still to run are due, by grant (grants without one are left out). */
  pending(name: JobName, grantIds: string[]): Promise<Map<string, Date[]>>;
}

/** What every command gets: config, storage, the agent hub, the scheduler, the mailer, caches and a logger. */
export interface Ctx {
  config: ServerConfig;
  c: Collections;
  hub: AgentHub;
  scheduler: Scheduler;
  mailer: ServerMailer;
  smtpTests: SmtpTests;
  /** When each endpoint was last heard from, and whether it is online. */
  presence: Presence;
  /** Endpoint records for authenticating agents without a read per request. */
  endpointCache: EndpointCache;
  /** Cached save times of the SMTP settings, for the poll's settings revision. */
  policyRevisions: PolicyRevisions;
  /** Serialises state changes of one grant (keyed by grant id). */
  grantLocks: SerialQueues;
  log: Logger;
}
