import { Router } from 'express';
import { z } from 'zod';
import { Ack, CredentialHandover, EnrollRequest, Inventory, ReportBatch, SmtpTestResult } from '../../../protocol/messages.ts';
import { ackInstructions, poll } from '../../commands/agentChannel.ts';
import { agentSettings, handOverCredentials } from '../../commands/agentSettings.ts';
import { applyReports } from '../../commands/applyReports.ts';
import { fileFromEndpoint, requestFromEndpoint, requestsFromEndpoint } from '../../commands/endpointRequests.ts';
import { presentRequests } from '../../presenters/request.ts';
import { fileRequestSchema, requestIdSchema } from '../../schemas/requests.ts';
import { ForwardedAsk } from '../../../protocol/local.ts';
import { enroll } from '../../commands/enrollment.ts';
import { storeInventory } from '../../commands/inventory.ts';
import { replayRevokes } from '../../commands/revokeGrant.ts';
import type { Ctx } from '../../context.ts';
import { apiError } from '../../errors.ts';
import { requireAgent } from '../auth.ts';
import { liftDeadline } from '../deadline.ts';
import { validate } from '../validate.ts';

const PollQuery = z.strictObject({ wait: z.coerce.number().min(0).max(60).optional() });
const AccountQuery = z.strictObject({ account: z.string().min(1).max(256) });

/** The agent channel: enrollment, then authenticated long-poll, acks and reports. */
export function agentRoutes(ctx: Ctx): Router {
  const r = Router();

  // Out of the request deadline from its first write (see http/deadline.ts and enrollment.ts).
  r.post('/enroll', async (req, res) => {
    res.status(201).json(await enroll(ctx, validate(EnrollRequest, req.body), () => liftDeadline(res)));
  });

  r.use(requireAgent(ctx));

  r.get('/instructions', async (req, res) => {
    const { wait = ctx.config.longPollSeconds } = validate(PollQuery, req.query);
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    res.json(await poll(ctx, res.locals.endpoint._id, wait * 1000, abort.signal));
  });

  r.get('/settings', async (_req, res) => {
    res.json(await agentSettings(ctx, res.locals.endpoint._id));
  });

  r.post('/credentials', async (req, res) => {
    await handOverCredentials(ctx, res.locals.endpoint._id, validate(CredentialHandover, req.body));
    res.status(202).end();
  });

  r.post('/smtp-tests/:id', async (req, res) => {
    const { id } = validate(z.strictObject({ id: z.string().min(1).max(100) }), req.params);
    ctx.smtpTests.complete(res.locals.endpoint._id, id, validate(SmtpTestResult, req.body));
    res.status(204).end();
  });

  r.post('/acks', async (req, res) => {
    await ackInstructions(ctx, res.locals.endpoint._id, validate(Ack, req.body).ids);
    res.status(204).end();
  });

  r.put('/inventory', async (req, res) => {
    await storeInventory(ctx, res.locals.endpoint._id, validate(Inventory, req.body));
    res.status(204).end();
  });

  // `jit request` on the endpoint, for the account the agent proved (commands/endpointRequests.ts).
  r.post('/requests', async (req, res) => {
    const { account, ...ask } = validate(ForwardedAsk, req.body);
    const input = validate(fileRequestSchema(ctx.config, new Date()), { endpoint: res.locals.endpoint._id, ...ask });
    const filed = await fileFromEndpoint(ctx, res.locals.endpoint, account, input);
    res.status(201).json((await presentRequests(ctx, [filed]))[0]);
  });

  r.get('/requests', async (req, res) => {
    const { account } = validate(AccountQuery, req.query);
    res.json({ requests: await presentRequests(ctx, await requestsFromEndpoint(ctx, res.locals.endpoint, account)) });
  });

  r.get('/requests/:id', async (req, res) => {
    const { id } = validate(requestIdSchema, req.params);
    const { account } = validate(AccountQuery, req.query);
    res.json((await presentRequests(ctx, [await requestFromEndpoint(ctx, res.locals.endpoint, account, id)]))[0]);
  });

  r.post('/reports', async (req, res) => {
    const { reports } = validate(ReportBatch, req.body);
    // Revokes journaled during an outage go in first: a 'removed' report applied before its
    // revoke would end the grant as 'removed' instead of 'revoked'. The agent's outbox retries.
    if ((await replayRevokes(ctx)) > 0) throw apiError('db.unavailable');
    const endpointId = res.locals.endpoint._id;
    // A grant a report ends leaves the live-grants index in its transition (commands/transition.ts `finish`).
    const accepted = await applyReports(ctx, endpointId, reports);
    res.json({ accepted });
  });

  return r;
}
