import { ACCOUNT_OSES, ownAccount } from '../commands/userAccounts.ts';
import type { UserDoc } from '../store/collections.ts';

/** A user as the API shows them; never a password or token hash. */
export function presentUser(u: UserDoc) {
  return {
    id: u._id,
    email: u.email,
    role: u.role,
    disabled: u.disabled,
    /** The admin's mapping: only the OSes set. */
    accounts: u.accounts ?? {},
    /** The account a request of theirs elevates, per OS (the mapping, else the email's local part). */
    ownAccounts: Object.fromEntries(ACCOUNT_OSES.map((os) => [os, ownAccount(u.email, os, u.accounts)])),
    createdAt: u.createdAt.toISOString(),
    updatedAt: u.updatedAt.toISOString(),
  };
}
