/**
 * Every error a request can raise, as the API and the console answer it:
 * our own ApiErrors as they are; the client's own mistakes that express,
 * the router and body-parser report (a bad percent-encoding, a body that is
 * not what its headers say, a client that left) as 4xx with stable ids;
 * a database that cannot be reached or did not answer in time as 503
 * db.unavailable (with Retry-After); anything else as a 500. Only a 500 is
 * logged as an error.
 */
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import type { Ctx } from '../context.ts';
import { noteDatabaseUnavailable } from '../scheduler/startupHold.ts';
import { isDbUnavailable } from '../db/unavailable.ts';
import { ApiError, apiError, type ErrorId } from '../errors.ts';

/** body-parser and raw-body set `type` on their errors (see their READMEs). */
const BY_TYPE: Record<string, ErrorId> = {
  'entity.too.large': 'body.too_large',
  'entity.parse.failed': 'body.not_json',
  'parameters.too.many': 'body.too_many_fields',
  'encoding.unsupported': 'body.encoding_unsupported',
  'charset.unsupported': 'body.charset_unsupported',
  'request.size.invalid': 'body.length_mismatch',
  'request.aborted': 'request.aborted',
  'querystring.parse.rangeError': 'request.invalid',
};

interface HttpErrorLike {
  type?: unknown;
  status?: unknown;
  errno?: unknown;
}

/** The one mapping from what a request raised to what the API and the console answer. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (typeof err !== 'object' || err === null) return apiError('internal');
  if (isDbUnavailable(err)) return apiError('db.unavailable');
  const { type, status, errno } = err as HttpErrorLike;
  if (typeof type === 'string' && BY_TYPE[type]) return apiError(BY_TYPE[type]);
  // The router sets status 400 on the URIError of a path parameter it cannot decode; one without
  // a status comes from decoding some other part of the request (a cookie): the client's too.
  if (err instanceof URIError && (status === undefined || status === 400)) return apiError('request.bad_url');
  const clientError = typeof status === 'number' && status >= 400 && status < 500;
  if (!clientError) return apiError('internal');
  // body-parser passes zlib's error (with its errno) on, as a 400, when the body does not decompress.
  if (typeof errno === 'number') return apiError('body.bad_encoding');
  return apiError('request.invalid');
}

/**
 * What every error answer does before it is sent (the API's, the console's, the
 * deadline's): Retry-After on a 503, so clients know when to come back; and a
 * database that could not serve the request is told to the deletion checks' hold
 * (scheduler/startupHold.ts): an agent refused now sends its reports again later.
 */
export function prepareErrorAnswer(ctx: Ctx, res: Response, e: ApiError): void {
  if (e.status === 503) res.set('Retry-After', String(ctx.config.retryAfterSeconds));
  if (e.id === 'db.unavailable') noteDatabaseUnavailable(ctx);
}

/**
 * Logs a failed request at the level it deserves: error for ours (5xx), warn for an
 * unreachable database (not our bug, and one line per request while it lasts), debug for the client's.
 */
export function logFailure(log: Logger, req: Request, err: unknown, e: ApiError): void {
  if (e.id === 'db.unavailable') log.warn({ err: (err as Error)?.message ?? String(err), method: req.method, path: req.path }, 'database unavailable');
  else if (e.status >= 500) log.error({ err, method: req.method, path: req.path }, 'request failed');
  else log.debug({ id: e.id, method: req.method, path: req.path }, 'request refused');
}

/**
 * Logs what a handler raised after the request deadline had answered it (http/deadline.ts):
 * the database failing then is expected and only worth a note (debug), as is a client's
 * mistake; anything else is our bug and is logged as an error, as it would have been.
 */
export function logAfterDeadline(log: Logger, req: Request, err: unknown, e: ApiError): void {
  const where = { method: req.method, path: req.path };
  if (e.status >= 500 && e.id !== 'db.unavailable') log.error({ err, ...where }, 'request failed after its deadline answered');
  else log.debug({ ...where, err: (err as Error)?.message }, 'handler ended after its deadline');
}

/** Nobody is left to answer: the client closed the connection. */
export const clientGone = (req: Request, e: ApiError) => e.id === 'request.aborted' || req.socket.destroyed;
