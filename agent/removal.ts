/**
 * The one way an account of ours ends, used by grants, the orphan sweep and uninstall:
 *
 *   disable → log off → delete → purge (with the account's OS backstop timer)
 *
 * Each step finishes before the next starts, and the caller records it (durably) in between,
 * so a step that fails and is retried later resumes where it stopped, and the account is
 * never usable again once the first step has run: a failed logoff or delete leaves it dead,
 * not enabled with the password that was mailed.
 */
import type { AccountBackend, AccountRef } from './os/backend.ts';

export const REMOVAL_STEPS = ['disable', 'logoff', 'delete', 'purge'] as const;
export type RemovalStep = (typeof REMOVAL_STEPS)[number];

/** Called after a step succeeded and before the next starts; `ended` is set for logoff. */
export type StepDone = (step: RemovalStep, outcome: { existed: boolean; ended?: number }) => Promise<void> | void;

/**
 * Runs the removal from `from` on, up to and including `upTo`. `account.id` may be empty when it
 * was never known (an account whose creation never finished); it is then read from the OS, and
 * purge is skipped if the account is gone without one.
 */
export async function removeAccount(b: AccountBackend, account: AccountRef, from: RemovalStep, done: StepDone = () => {}, upTo: RemovalStep = 'purge'): Promise<void> {
  let id = account.id;
  for (const step of REMOVAL_STEPS.slice(REMOVAL_STEPS.indexOf(from), REMOVAL_STEPS.indexOf(upTo) + 1)) {
    const info = step === 'purge' ? null : await b.lookup(account.name);
    if (info && !id) id = info.id;
    const existed = info !== null;
    switch (step) {
      case 'disable':
        if (existed) await b.disable(account.name);
        await done(step, { existed });
        break;
      case 'logoff':
        await done(step, existed ? { existed, ended: (await b.logoff(account.name)).ended } : { existed });
        break;
      case 'delete':
        if (existed) await b.delete(account.name);
        await done(step, { existed });
        break;
      case 'purge':
        // The account is gone: its OS timer has nothing left to do.
        await b.disarmBackstop(account.name);
        if (id) await b.purge({ name: account.name, id });
        await done(step, { existed: false });
        break;
    }
  }
}
