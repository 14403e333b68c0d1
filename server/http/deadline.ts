/**
 * The per-request deadline: a request that needs the database and has no answer
 * `requestDeadlineSeconds` after it arrived is answered 503 db.unavailable
 * (with Retry-After) by this timer, whatever its handler is still waiting for.
 * The driver's own time limits (db/connect.ts) make most such requests fail
 * sooner; this is the bound for a handler that makes several slow calls in a row.
 *
 * Exempt: what must not or need not be cut: the liveness and health answers
 * (bounded on their own), static assets, the agents' long-poll (it waits by
 * design; its database reads are bounded by the driver) and SMTP tests (they
 * wait for a mail server or an endpoint).
 *
 * Lifted (`liftDeadline`) once they start writing: the writes that are not
 * idempotent, a grant create (API and wizard) and an agent's enrollment. Why: the
 * 503 says "nothing happened, try again", but the handler goes on, so a slow
 * create would be stored after it and its retry would make every grant (and every
 * temporary administrator account) twice, and a slow enrollment would replace the
 * credential the agent never got. Their reads and checks stay under the deadline
 * (nothing is written yet, so its 503 is true); from their first write they wait
 * for the database as long as the driver lets them, which with the database down
 * still fails within its limits (server selection 2 s; a frozen one 3 s per call
 * on the socket) and answers 503 then.
 *
 * What the handler does after the deadline answered is not undone: its answer
 * is dropped (`res.locals.timedOut`), and its database calls end by the driver's
 * limits.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { Ctx } from '../context.ts';
import { apiError, type ApiError } from '../errors.ts';

declare module 'express-serve-static-core' {
  interface Locals {
    /** Set when the deadline answered: whatever the handler does later is not sent. */
    timedOut?: boolean;
    /** Stops the deadline (see `liftDeadline`); set while it runs. */
    stopDeadline?: () => void;
    /** When the deadline answers (ms since the epoch), for handlers with a fallback of their own (a revoke). */
    deadlineAt?: number;
  }
}

const EXEMPT: { method: string | null; path: RegExp }[] = [
  { method: null, path: /^\/(livez|healthz|favicon\.ico)$/ },
  { method: null, path: /^\/assets\// },
  { method: 'GET', path: /^\/agent\/v1\/instructions$/ },
  { method: 'POST', path: /^\/api\/v1\/(server-smtp|agent-settings)\/test$/ },
  { method: 'POST', path: /^\/settings-test$/ },
];

export function isExempt(req: Pick<Request, 'method' | 'path'>): boolean {
  return EXEMPT.some((x) => (x.method === null || x.method === req.method) && x.path.test(req.path));
}

/**
 * Takes the request out of the deadline from here on: call it just before the
 * first write of a request that must not be answered "try again" while it goes
 * on (see above). Throws if the deadline has answered already: then nothing may
 * be started.
 */
export function liftDeadline(res: Response): void {
  if (res.locals.timedOut) throw apiError('db.unavailable');
  res.locals.stopDeadline?.();
}

/** Sends `e` the way the client of `path` expects it (JSON for the API, a page for the console). */
export type Answer = (path: string, res: Response, e: ApiError) => void;

export function requestDeadline(ctx: Ctx, answer: Answer): RequestHandler {
  const ms = ctx.config.requestDeadlineSeconds * 1000;
  return (req, res, next) => {
    if (isExempt(req)) return next();
    // Taken now: routers rewrite req.path to their own part of it while they run.
    const { method, path } = req;
    let timer: NodeJS.Timeout | undefined;
    let over = false;
    const fire = () => {
      if (over || res.headersSent) return;
      // Still receiving the body: a slow upload is requestTimeoutSeconds' business, so
      // the handler gets its whole time once the request is in.
      if (!req.complete) return void (timer = setTimeout(fire, ms));
      res.locals.timedOut = true;
      ctx.log.warn({ method, path, ms }, 'request deadline passed: answered 503 db.unavailable');
      answer(path, res, apiError('db.unavailable'));
    };
    const end = () => {
      over = true;
      clearTimeout(timer);
    };
    res.locals.stopDeadline = end;
    res.locals.deadlineAt = Date.now() + ms;
    res.once('finish', end);
    res.once('close', end);
    timer = setTimeout(fire, ms);
    next();
  };
}
