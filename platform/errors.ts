/**
 * The error catalogue of both processes (fastify's FST_ERR_* idiom): each code has one
 * message template that says what was expected, so logs and tests match on the code, and
 * an error that wraps another keeps it as `cause` (the message carries the cause's message
 * for the operator; the cause keeps its stack and code for whoever debugs).
 */

export const ERRORS = {
  // the webhook
  OVNKR_ERR_APP_OPTIONS: 'invalid webhook app options: %s',
  OVNKR_ERR_CONFIG: 'invalid webhook configuration: %s',
  OVNKR_ERR_TLS_FILES: 'cannot load the serving certificate: %s',
  // both processes
  OVNKR_ERR_PLAN_KEY: 'cannot load the plan key: %s',
  OVNKR_ERR_KUBECONFIG: 'cannot load %s',
  // the agent (the detail is the whole message: it names the file, address or flag)
  OVNKR_ERR_AGENT_START: '%s',
  OVNKR_ERR_AGENT_CONFIG: '%s',
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** The message of anything thrown (an Error's message, else its string form). */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `detail: <the cause's message>`, for wrapping an error with what was being done. */
export function withCause(detail: string, cause: unknown): string {
  return `${detail}: ${errorMessage(cause)}`;
}

/** An error with a stable `code` from ERRORS, an HTTP status when it reaches a client, and the error it wraps. */
export class CodedError extends Error {
  override name = 'CodedError';
  readonly statusCode: number;

  constructor(
    readonly code: ErrorCode,
    detail: string,
    opts: { cause?: unknown; statusCode?: number } = {},
  ) {
    super(ERRORS[code].replace('%s', detail), opts.cause === undefined ? {} : { cause: opts.cause });
    this.statusCode = opts.statusCode ?? 500;
  }
}
