/**
 * Unix uids for new accounts. Why a counter and not the lowest free uid: the next account would
 * then inherit whatever the last one left where deletion does not reach. A fresh state starts at
 * a random point of the range's first half, so two agents on one machine (sandboxes) do not walk
 * the same numbers.
 */
import type { AccountBackend } from './os/backend.ts';
import type { AgentState } from './state.ts';

/** The next uid of the backend's range (and the counter moved past it), or nothing where the OS picks ids. */
export function nextUid(state: AgentState, range: AccountBackend['uidRange']): { uid?: number } {
  if (!range) return {};
  let uid = state.nextUid ?? range.min + Math.floor(Math.random() * ((range.max - range.min) / 2));
  if (uid < range.min || uid > range.max) uid = range.min;
  state.nextUid = uid + 1;
  return { uid };
}
