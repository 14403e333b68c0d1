import { testSmtp } from '../../mail/smtpTest.ts';
import type { SmtpTestResult } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';
import { apiError } from '../errors.ts';
import { audit } from '../store/audit.ts';
import { findEndpoint } from '../store/endpoints.ts';
import { serverPolicy, toSmtpSettings } from './smtpPolicies.ts';

const ENDPOINT_TEST_MS = 30_000;

/** Tests the server's own SMTP settings (and sends a test message to `to`). */
export async function testServerSmtp(ctx: Ctx, actor: string, to?: string): Promise<SmtpTestResult> {
  const doc = await serverPolicy(ctx);
  if (!doc) throw apiError('settings.missing');
  const opts = { sender: 'the JIT access server', ...(to ? { to } : {}), ...(ctx.config.templatesDir ? { overrideDir: ctx.config.templatesDir } : {}) };
  const result = await testSmtp(toSmtpSettings(ctx, doc), opts);
  await audit(ctx.c, { actor, type: 'settings.smtp-tested', detail: { from: 'server', ...(to ? { to } : {}), ...result } });
  return result;
}

/** Asks an endpoint to test its effective Agent Settings (and send a test message to `to`). */
export async function testEndpointSmtp(ctx: Ctx, endpoint: string, actor: string, to?: string): Promise<SmtpTestResult & { hostname: string }> {
  const e = await findEndpoint(ctx.c, endpoint);
  if (!e) throw apiError('endpoint.not_found');
  const result = await ctx.smtpTests.run(e._id, ENDPOINT_TEST_MS, to);
  if (!result) throw apiError('endpoint.no_answer');
  await audit(ctx.c, { actor, type: 'settings.smtp-tested', endpointId: e._id, detail: { from: e.hostname, ...(to ? { to } : {}), ...result } });
  return { ...result, hostname: e.hostname };
}
