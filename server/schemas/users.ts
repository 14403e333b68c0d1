import { z } from 'zod';
import type { OperatingSystem } from '../../protocol/groups.ts';
import type { AccountMap } from '../store/collections.ts';

/** A user named in a path: their id, or their email. */
export const userRefSchema = z.strictObject({ id: z.string().trim().min(1).max(254) });

const OSES = ['linux', 'macos', 'windows'] as const satisfies readonly OperatingSystem[];

/** One OS's account, as given; empty or null = the default. Whether that OS has such a name, and may elevate it, commands/userAccounts.ts says (every field at once). */
const accountOn = z
  .union([z.string().trim().max(256, 'at most 256 characters'), z.null()], { error: 'an account name, or null for the default' })
  .optional()
  .transform((v) => v || undefined);

/**
 * `PUT /api/v1/users/:id/accounts`: the person's own account per OS, replacing the whole mapping;
 * an OS left out (or empty, or null) uses the email's local part.
 */
export const userAccountsSchema = z
  .strictObject({ linux: accountOn, macos: accountOn, windows: accountOn })
  .transform((v): AccountMap => Object.fromEntries(OSES.flatMap((os) => (v[os] ? [[os, v[os]]] : []))));
export type UserAccountsInput = z.infer<typeof userAccountsSchema>;
