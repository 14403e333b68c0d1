import type { AgentSettings, CredentialHandover } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';
import { isFinal } from '../domain/lifecycle.ts';
import { apiError } from '../errors.ts';
import { agentActor, audit } from '../store/audit.ts';
import { grantOf } from '../store/grants.ts';
import { effectivePolicy, settingsRevision, toSmtpSettings } from './smtpPolicies.ts';

/** The endpoint's effective Agent Settings, SMTP password included (sent over the authenticated channel only). */
export async function agentSettings(ctx: Ctx, endpointId: string): Promise<AgentSettings> {
  const doc = await effectivePolicy(ctx, endpointId);
  return { revision: await settingsRevision(ctx, endpointId), smtp: doc ? toSmtpSettings(ctx, doc) : null };
}

/** Server-side SMTP: takes fresh credentials from the agent and sends them from memory. */
export async function handOverCredentials(ctx: Ctx, endpointId: string, h: CredentialHandover): Promise<void> {
  const g = await grantOf(ctx.c, h.grantId, endpointId);
  if (!g) throw apiError('grant.not_found');
  if (!g.serverSideSmtp || isFinal(g.state)) throw apiError('grant.not_active');
  await audit(ctx.c, { actor: agentActor(endpointId), type: 'credentials.handed-over', grantId: g._id, endpointId, detail: { username: h.username } });
  ctx.mailer.sendCredentials({ ...g, username: h.username }, h.username, h.password);
}
