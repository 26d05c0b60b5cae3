/**
 * The webhook's catalogue of coded errors (fastify's FST_ERR_* idiom): each code has one
 * message template that says what was expected, so logs and tests match on the code.
 */

export const ERRORS = {
  OVNKR_ERR_APP_OPTIONS: 'invalid webhook app options: %s',
  OVNKR_ERR_CONFIG: 'invalid webhook configuration: %s',
  OVNKR_ERR_TLS_FILES: 'cannot load the serving certificate: %s',
  OVNKR_ERR_PLAN_KEY: 'cannot load the plan key: %s',
  OVNKR_ERR_KUBECONFIG: 'cannot load %s',
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a stable `code` from ERRORS and an HTTP status when it reaches a client. */
export class WebhookError extends Error {
  override name = 'WebhookError';
  constructor(readonly code: ErrorCode, detail: string, readonly statusCode = 500) {
    super(ERRORS[code].replace('%s', detail));
  }
}
