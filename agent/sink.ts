/** Where the policy layer hands fresh credentials: the email delivery (agent/delivery.ts). */
import type { GrantRecord } from './state.ts';

/** Gets fresh credentials to the end user. Must neither store nor log the password. */
export interface CredentialSink {
  /** Starts delivering in the background (with retries). */
  deliver(grant: GrantRecord, password: string): void;
  /** True while a delivery for the grant is under way. */
  isActive(grantId: string): boolean;
  cancel(grantId: string): void;
  /** Tells the end user their access is over (best effort). */
  ended(grant: GrantRecord): Promise<void>;
  /** elevate-account: tells the end user their own account is elevated until the end (best effort). */
  elevated(grant: GrantRecord): Promise<void>;
}

export type DeliveryResult = { ok: true; via: 'endpoint' | 'server' } | { ok: false; error: string };
