/**
 * The webhook's errors: coded, from the one catalogue of both processes (platform/errors.ts),
 * so logs and tests match on the code; a wrapped error is kept as `cause`.
 */
import { CodedError } from '../platform/errors.js';

export { ERRORS, type ErrorCode } from '../platform/errors.js';

/** An error with a stable `code` from ERRORS (and an HTTP status when it reaches a client). */
export class WebhookError extends CodedError {
  override name = 'WebhookError';
}
