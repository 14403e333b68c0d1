import { z } from 'zod';
import { EnrollRequest } from '../../protocol/messages.ts';

/** Longest lifetime of an enrollment token: a week. */
export const MAX_TOKEN_TTL_MINUTES = 10_080;

/** `POST /api/v1/enrollment-tokens`: an optional lifetime (else the configured one). */
export const enrollmentTokenSchema = z.strictObject({
  ttlMinutes: z
    .number({ error: 'must be a whole number of minutes' })
    .int('must be a whole number of minutes')
    .min(1, 'must be at least 1 minute')
    .max(MAX_TOKEN_TTL_MINUTES, `must be at most ${MAX_TOKEN_TTL_MINUTES} minutes (a week)`)
    .optional(),
});

/**
 * The enroll request as the server reads it: the protocol's, plus the
 * machine's identity when the agent sends one (sha256 of a stable machine id,
 * e.g. /etc/machine-id, in hex). Why here: the protocol schema does not carry
 * it yet; once it does, this adds nothing.
 */
export const serverEnrollSchema = EnrollRequest.extend({
  machineId: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits (a sha256)').optional(),
});
export type ServerEnrollRequest = z.infer<typeof serverEnrollSchema>;
