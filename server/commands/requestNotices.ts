/**
 * The emails of access requests, through the server's SMTP (ServerMailer, best effort with a few
 * tries; never holding the API back): the approvers when a request waits for them, the requester
 * when it is approved, denied or expires. A cancel is the requester's own doing: no email.
 */
import type { Ctx } from '../context.ts';
import { emailKey } from '../store/collections.ts';
import type { RequestDoc } from '../store/requests.ts';
import { can } from '../web/roles.ts';

/** Who may decide `r`: the rule's named approvers, else every enabled user who may decide; never the requester. */
export async function approversOf(ctx: Ctx, r: RequestDoc): Promise<string[]> {
  const users = r.approvers.length ? r.approvers : (await ctx.c.users.find({ disabled: false }).toArray()).filter((u) => can(u.role, 'requests.decide')).map((u) => u.email);
  return [...new Set(users.map(emailKey))].filter((e) => e !== r.requesterKey);
}

/** The request's console page, when the server knows the address people reach it at. */
function linkOf(ctx: Ctx, r: RequestDoc): { link?: string } {
  const base = ctx.config.publicUrl ?? (ctx.config.oidc ? new URL(ctx.config.oidc.redirectUrl).origin : undefined);
  return base ? { link: new URL(`/requests/${encodeURIComponent(r._id)}`, base).href } : {};
}

export function noticeApprovers(ctx: Ctx, r: RequestDoc): void {
  void (async () => {
    for (const to of await approversOf(ctx, r)) {
      await ctx.mailer.sendRequestNotice(r._id, to, 'request-pending', {
        endpoint: r.hostname, requester: r.requesterEmail, ...(r.account ? { account: r.account } : {}), group: r.group, minutes: r.minutes,
        why: r.reason || '(none given)', rule: r.rule, requestId: r._id, expires: r.expiresAt, ...linkOf(ctx, r),
      });
    }
  })().catch((err: Error) => ctx.log.warn({ requestId: r._id, err: err.message }, 'approvers not told of a request'));
}

export function noticeRequester(ctx: Ctx, r: RequestDoc): void {
  if (r.state !== 'approved' && r.state !== 'denied' && r.state !== 'expired') return;
  const decidedBy = r.decidedBy?.replace(/^user:/, '');
  void ctx.mailer
    .sendRequestNotice(r._id, r.requesterEmail, 'request-decided', {
      endpoint: r.hostname, ...(r.account ? { account: r.account } : {}), group: r.group, state: r.state, requestId: r._id, ...linkOf(ctx, r),
      ...(decidedBy && r.state !== 'expired' ? { decidedBy } : {}), ...(r.note ? { note: r.note } : {}),
      ...(r.grantStartAt && r.grantEndAt ? { start: r.grantStartAt, end: r.grantEndAt } : {}),
    })
    .catch((err: Error) => ctx.log.warn({ requestId: r._id, err: err.message }, 'requester not told of a decision'));
}
