/**
 * Every error the API returns is made here, with a stable id from one table,
 * so clients can branch on `error.id` and the wording can change freely.
 */
export const ERRORS = {
  'validation.failed': { status: 400, message: 'The request is not valid.' },
  'body.not_json': { status: 400, message: 'The body must be a JSON object (Content-Type: application/json).' },
  'body.too_large': { status: 400, message: 'The body is too large.' },
  'body.too_many_fields': { status: 400, message: 'The form has too many fields.' },
  'body.bad_encoding': { status: 400, message: 'The body could not be decoded as its Content-Encoding says.' },
  'body.encoding_unsupported': { status: 415, message: 'Content-Encoding must be gzip, deflate, br or none.' },
  'body.charset_unsupported': { status: 415, message: 'The body must be UTF-8.' },
  'body.length_mismatch': { status: 400, message: 'The body does not match its Content-Length.' },
  'request.bad_url': { status: 400, message: 'The URL is not valid (malformed percent-encoding).' },
  'request.aborted': { status: 400, message: 'The client closed the request before sending all of it.' },
  'request.invalid': { status: 400, message: 'The request is not valid.' },
  'auth.required': { status: 401, message: 'Authentication is required.' },
  'auth.invalid': { status: 401, message: 'The credentials are not valid.' },
  'auth.forbidden': { status: 403, message: 'You may not do this.' },
  'auth.csrf': { status: 403, message: 'The form has expired or did not come from this console; reload the page and try again.' },
  'auth.locked': { status: 429, message: 'Too many failed logins: try again later.' },
  'user.exists': { status: 409, message: 'A user with this email already exists.' },
  'user.not_found': { status: 404, message: 'No such user.' },
  'enrollment.invalid_token': { status: 401, message: 'The enrollment token is unknown, used or expired.' },
  'grant.not_found': { status: 404, message: 'No such grant.' },
  'grant.not_revocable': { status: 409, message: 'The grant has already ended.' },
  'endpoint.not_found': { status: 404, message: 'No such endpoint.' },
  'endpoint.hostname_taken': { status: 409, message: 'Another machine is enrolled with this hostname.' },
  'endpoint.no_answer': { status: 504, message: 'The endpoint did not answer in time.' },
  'grant.not_active': { status: 409, message: 'The grant has no account to send credentials for.' },
  'grant.no_credentials': { status: 409, message: 'An elevate-account grant has no credentials: the person signs in with their own.' },
  'request.not_found': { status: 404, message: 'No such request.' },
  'request.not_pending': { status: 409, message: 'The request has been decided already (or expired, or was cancelled).' },
  'request.duplicate': { status: 409, message: 'You already have an open request for this endpoint and group.' },
  'request.self_approval': { status: 403, message: 'Nobody may decide their own request.' },
  'request.not_approver': { status: 403, message: 'The rule that routed this request names other approvers.' },
  'request.no_person': { status: 404, message: 'The account asking is nobody\'s own account: an admin maps it to a person (Users page).' },
  'request.account_shared': { status: 409, message: 'Your own account on this endpoint is also another person\'s: an admin must map yours (Users page) first.' },
  'request.not_yours': { status: 403, message: 'Only the requester may cancel a request.' },
  'idempotency.key_reused': { status: 422, message: 'This Idempotency-Key was used for another request.' },
  'settings.not_found': { status: 404, message: 'No such settings.' },
  'settings.missing': { status: 409, message: 'No SMTP settings are configured for this.' },
  'route.not_found': { status: 404, message: 'No such route.' },
  'db.unavailable': { status: 503, message: 'The database is unreachable or did not answer in time. Try again in a few seconds.' },
  'internal': { status: 500, message: 'Something went wrong on the server.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorId = keyof typeof ERRORS;

/** One problem with one input field. */
export interface FieldIssue {
  field: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly id: ErrorId,
    readonly fields: FieldIssue[] = [],
    message?: string,
  ) {
    super(message ?? ERRORS[id].message);
    this.status = ERRORS[id].status;
  }

  toJSON() {
    return { error: { id: this.id, message: this.message, ...(this.fields.length ? { fields: this.fields } : {}) } };
  }
}

export const apiError = (id: ErrorId, message?: string) => new ApiError(id, [], message);
export const invalid = (fields: FieldIssue[]) => new ApiError('validation.failed', fields);
