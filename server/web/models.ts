/**
 * What the console's views show, built on the API's presenters so both say the same.
 */
import { isFinal } from '../domain/lifecycle.ts';
import { presentGrant } from '../presenters/grant.ts';
import type { GrantDoc } from '../store/collections.ts';

/** A grant row: the API's grant plus the next deadline for the countdown. */
export function grantRow(g: GrantDoc, now = new Date()) {
  const p = presentGrant(g);
  const next =
    isFinal(g.state) ? null
    : g.enableAt > now && g.state !== 'enabled' ? { label: 'enabled in', at: p.enableAt }
    : g.endAt > now ? { label: 'ends in', at: p.endAt }
    : { label: 'ended', at: p.endAt };
  return { ...p, live: !isFinal(g.state), next, mailFailed: g.delivery.status === 'failed' };
}
