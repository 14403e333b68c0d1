/**
 * The access-request lifecycle: one pure state machine, no IO, beside the grant's (lifecycle.ts).
 *
 *   pending ──approve──▶ approved      (the grant is created by the same command as the wizard's)
 *   pending ──deny─────▶ denied        (with the approver's note, shown to the requester)
 *   pending ──expire───▶ expired       (nobody decided before `expiresAt`)
 *   pending ──cancel───▶ cancelled     (by the requester)
 *
 * Every state but pending is final: a decision is made once. Who may send which event (an
 * approver who is not the requester, the requester themself) is the command's check; this only
 * says what an event does to a state.
 */
export const REQUEST_STATES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const;
export type RequestState = (typeof REQUEST_STATES)[number];

export type RequestEvent = { type: 'approve' } | { type: 'deny' } | { type: 'expire' } | { type: 'cancel' };

const TARGET: Record<RequestEvent['type'], RequestState> = {
  approve: 'approved',
  deny: 'denied',
  expire: 'expired',
  cancel: 'cancelled',
};

/** The state after `event`, or null when it does not apply (the request was decided already). */
export function nextRequestState(state: RequestState, event: RequestEvent): RequestState | null {
  return state === 'pending' ? TARGET[event.type] : null;
}

export const isOpen = (state: RequestState): boolean => state === 'pending';
