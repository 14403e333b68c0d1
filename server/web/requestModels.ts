/**
 * What the console's request pages show, built on the API's presenter (presenters/request.ts) so
 * both say the same. Which buttons a row offers follows the role table (web/roles.ts) and the
 * request's own approvers; the commands still check every action (commands/decideRequest.ts).
 */
import type { Response } from 'express';
import type { Caller } from '../commands/decideRequest.ts';
import type { Ctx } from '../context.ts';
import type { RuleAction } from '../domain/rules.ts';
import { presentRequests } from '../presenters/request.ts';
import { emailKey } from '../store/collections.ts';
import type { RequestDoc } from '../store/requests.ts';
import { can } from './roles.ts';

/** The signed-in person as the request commands know them. */
export function caller(res: Response): Caller {
  return { actor: res.locals.actor, email: res.locals.signed.user.email, role: res.locals.role };
}

/** "45 s", "12 min", "3 h 05 min", "2 d 4 h". */
export function age(from: Date, now = new Date()): string {
  const s = Math.max(0, Math.floor((now.getTime() - from.getTime()) / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${String(m % 60).padStart(2, '0')} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export const ACTION_LABEL: Record<RuleAction, string> = {
  'auto-approve': 'approved by the rule',
  'require-approval': 'an approver decides',
  deny: 'denied by the rule',
};

/** Whether `who` may approve or deny `r` now (what checkApprover will let through), to show the buttons. */
export function mayDecide(r: RequestDoc, who: Caller): boolean {
  const key = emailKey(who.email);
  return r.state === 'pending' && can(who.role, 'requests.decide') && r.requesterKey !== key && (r.approvers.length === 0 || r.approvers.includes(key));
}

/** Requests as table rows: the API's fields, the age, the buttons this person gets. */
export async function requestRows(ctx: Ctx, list: RequestDoc[], who: Caller, now = new Date()) {
  const presented = await presentRequests(ctx, list);
  return presented.map((p, i) => {
    const r = list[i]!;
    const own = r.requesterKey === emailKey(who.email);
    return {
      ...p,
      age: age(r.createdAt, now),
      own,
      ruleSays: ACTION_LABEL[r.ruleAction],
      mayCancel: r.state === 'pending' && own && can(who.role, 'requests.file'),
      mayDecide: mayDecide(r, who),
      /** The grant's page is for roles that read grants; a requester sees its state here. */
      grantLink: Boolean(p.grant) && can(who.role, 'read'),
    };
  });
}
export type RequestRow = Awaited<ReturnType<typeof requestRows>>[number];
