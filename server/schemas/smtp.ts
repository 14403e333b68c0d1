import { z } from 'zod';
import { SmtpSettings } from '../../mail/smtp.ts';

/**
 * SMTP settings as an admin writes them. `password`: a string sets it, null
 * clears it, leaving it out keeps the stored one (the API never shows it).
 */
export const smtpPolicyInput = z.strictObject({
  ...SmtpSettings.shape,
  username: z.string().min(1).max(254).nullable().optional(),
  password: z.string().min(1).max(256).nullable().optional(),
  tlsCa: SmtpSettings.shape.tlsCa.nullable(),
  /** Named in every email; null or left out: none. */
  organisation: SmtpSettings.shape.organisation.nullable(),
});
export type SmtpPolicyInput = z.infer<typeof smtpPolicyInput>;

export const endpointParam = z.strictObject({ endpointId: z.string().min(1).max(100) });

/** Optional `to`: also send a real test message there. */
export const serverSmtpTestInput = z.strictObject({ to: z.email().max(254).optional() });
export const smtpTestInput = serverSmtpTestInput.extend({ endpoint: z.string().min(1).max(100) });
