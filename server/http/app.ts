import express, { type ErrorRequestHandler } from 'express';
import { API_PREFIX } from '../../protocol/messages.ts';
import type { Ctx } from '../context.ts';
import { ApiError, apiError } from '../errors.ts';
import { consoleRoutes } from '../web/console.ts';
import { webOptions } from '../web/options.ts';
import { requireAdmin } from './auth.ts';
import { agentRoutes } from './routes/agent.ts';
import { endpointRoutes } from './routes/endpoints.ts';
import { grantRoutes } from './routes/grants.ts';
import { settingsRoutes } from './routes/settings.ts';

/** The HTTP API: /api/v1 for admins, /agent/v1 for agents; the admin console (HTML forms) everywhere else. */
export function createApp(ctx: Ctx): express.Express {
  const app = express();
  const web = webOptions();
  app.disable('x-powered-by');
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
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.use(API_PREFIX, agentRoutes(ctx));
  app.use('/api/v1', requireAdmin(ctx, web), grantRoutes(ctx), endpointRoutes(ctx), settingsRoutes(ctx));
  app.use(() => {
    throw apiError('route.not_found');
  });
  app.use(errorHandler(ctx));
  return app;
}

function errorHandler(ctx: Ctx): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    const e = toApiError(err);
    if (e.status >= 500) ctx.log.error({ err }, 'request failed');
    res.status(e.status).json(e.toJSON());
  };
}

/** body-parser's own errors become ours; anything unknown is a 500 without details. */
function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const type = (err as { type?: string }).type;
  if (type === 'entity.too.large') return apiError('body.too_large');
  if (type === 'entity.parse.failed' || type === 'encoding.unsupported' || type === 'charset.unsupported') return apiError('body.not_json');
  return apiError('internal');
}
