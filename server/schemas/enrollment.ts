import { z } from 'zod';

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
