/**
 * Unix uids for new accounts. Why a counter and not the lowest free uid: the next account would
 * then inherit whatever the last one left where deletion does not reach. A fresh state starts at
 * a random point of the range's first half, so two agents on one machine (sandboxes) do not walk
 * the same numbers.
 */
import { AccountError, type AccountBackend } from './os/backend.ts';
import type { AgentState } from './state.ts';

/**
 * The next uid of the backend's range (and the counter moved past it), or nothing where the OS
 * picks ids. Past the range's end it throws rather than start again: starting again would hand
 * out numbers already used (100 million of them: one grant a second for three years).
 */
export function nextUid(state: AgentState, range: AccountBackend['uidRange']): { uid?: number } {
  if (!range) return {};
  let uid = state.nextUid ?? range.min + Math.floor(Math.random() * ((range.max - range.min) / 2));
  if (uid < range.min) uid = range.min; // a range that moved up
  if (uid > range.max) throw new AccountError('COMMAND_FAILED', `every uid of ${range.min}-${range.max} was handed out once`);
  state.nextUid = uid + 1;
  return { uid };
}
