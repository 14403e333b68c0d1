import http from 'node:http';
import express, { type ErrorRequestHandler } from 'express';
import { API_PREFIX } from '../../protocol/messages.ts';
import type { ServerConfig } from '../config.ts';
import type { Ctx } from '../context.ts';
import { apiError, type ApiError } from '../errors.ts';
import { outageOf } from '../journal/registry.ts';
import { noteDatabaseUnavailable } from '../scheduler/startupHold.ts';
import { consoleRoutes, isConsolePath, sendConsoleError } from '../web/console.ts';
import { webOptions } from '../web/options.ts';
import { requireAdmin } from './auth.ts';
import { clientGone, logAfterDeadline, logFailure, prepareErrorAnswer, toApiError } from './clientErrors.ts';
import { requestDeadline } from './deadline.ts';
import { agentRoutes } from './routes/agent.ts';
import { endpointRoutes } from './routes/endpoints.ts';
import { grantRoutes } from './routes/grants.ts';
import { requestRoutes } from './routes/requests.ts';
import { settingsRoutes } from './routes/settings.ts';
import { userRoutes } from './routes/users.ts';

/**
 * The HTTP API: /api/v1 for admins, /agent/v1 for agents; the admin console (HTML forms) everywhere else.
 * `app.listen` serves it with `createHttpServer`'s timeouts.
 */
export function createApp(ctx: Ctx): express.Express {
  const app = express();
  const web = webOptions();
  app.disable('x-powered-by');
  // Before everything, so a page or call that waits on the database is answered in time too.
  app.use(requestDeadline(ctx, (path, res, e) => (isConsolePath(path) ? sendConsoleError(ctx, res, e) : sendApiError(ctx, res, e))));
  app.use(consoleRoutes(ctx, web));
  app.use(express.json({ limit: ctx.config.bodyLimit }));
  app.use((req, _res, next) => {
    // A body that is not JSON is rejected rather than silently ignored.
    // A zero-length body counts as none (fetch sends "content-length: 0" on a bare POST).
    const empty = req.get('content-length') === '0' && !req.get('transfer-encoding');
    if (!empty && req.is('application/json') === false) {
      throw apiError('body.not_json');
    }
    next();
  });
  // Liveness: the process serves requests. Nothing else is asked.
  app.get('/livez', (_req, res) => {
    res.json({ ok: true });
  });
  // Health: whether the database answers a ping within ~1 s.
  app.get('/healthz', async (_req, res) => {
    const ping = outageOf(ctx)?.ping() ?? Promise.resolve();
    const reachable = await ping.then(
      () => true,
      () => false,
    );
    if (reachable) return void res.json({ ok: true, db: 'reachable' });
    noteDatabaseUnavailable(ctx);
    res.status(503).set('Retry-After', String(ctx.config.retryAfterSeconds)).json({ ok: false, db: 'unreachable' });
  });
  app.use(API_PREFIX, agentRoutes(ctx));
  app.use('/api/v1', requireAdmin(ctx, web), grantRoutes(ctx), endpointRoutes(ctx), settingsRoutes(ctx), requestRoutes(ctx), userRoutes(ctx));
  app.use(() => {
    throw apiError('route.not_found');
  });
  app.use(errorHandler(ctx));
  // Why here: startServer calls app.listen, and express's own listen makes a server with Node's defaults.
  app.listen = ((...args: unknown[]) => createHttpServer(app, ctx.config).listen(...(args as []))) as typeof app.listen;
  return app;
}

/**
 * The HTTP server with timeouts for clients that send slowly or never finish:
 * the headers and the whole request (headers and body) must arrive within
 * `requestTimeoutSeconds`, else 408 and the connection is closed; an idle
 * keep-alive connection is closed after 5 s. Agents' long-polls are not cut:
 * the request timeout stops once a request is fully received (a GET at once),
 * however long the answer then takes.
 */
export function createHttpServer(app: express.Express, config: Pick<ServerConfig, 'requestTimeoutSeconds'>): http.Server {
  const ms = config.requestTimeoutSeconds * 1000;
  const server = http.createServer({ requestTimeout: ms, headersTimeout: ms, connectionsCheckingInterval: Math.min(1000, ms) }, app);
  server.keepAliveTimeout = 5_000;
  return server;
}

function sendApiError(ctx: Ctx, res: express.Response, e: ApiError): void {
  prepareErrorAnswer(ctx, res, e);
  res.status(e.status).json(e.toJSON());
}

function errorHandler(ctx: Ctx): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const e = toApiError(err);
    // The deadline answered already: nothing more is sent (a bug is still logged as one).
    if (res.locals.timedOut) return void logAfterDeadline(ctx.log, req, err, e);
    logFailure(ctx.log, req, err, e);
    if (clientGone(req, e)) return;
    if (res.headersSent) return void req.socket.destroy();
    sendApiError(ctx, res, e);
  };
}
