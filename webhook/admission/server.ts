/**
 * The webhook's HTTP surface: POST /mutate, /healthz, /readyz, /metrics. `buildApp()`
 * returns a fastify instance and never listens; only the entry point (webhook/main.ts)
 * listens, and tests use `app.inject()` or a real TLS listener on port 0.
 *
 * Bad input never becomes a 500: fastify's own 4xx errors (malformed JSON, wrong content
 * type, body too large) keep their status and carry a message; envelope problems get a
 * 400 from parseReview(); everything else is answered inside an AdmissionReview.
 */
import { Ajv } from 'ajv';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../../platform/log.js';
import { admit, type AdmitDeps } from './admission.js';
import { WebhookError } from '../errors.js';
import { createWebhookMetrics, type CacheGaugeSource, type RequestOutcome, type WebhookMetrics } from './metrics.js';
import { parseReview } from './review.js';

export interface AppOptions {
  admit: AdmitDeps;
  /** Readiness for /readyz: ready once the caches have synced. */
  readiness: () => { ready: boolean; detail: string };
  /**
   * Liveness for /healthz (what the Deployment's liveness probe checks): not alive when a
   * list+watch loop is dead (no progress past its bound). Default: always alive.
   */
  liveness?: () => { alive: boolean; detail: string };
  /** Registry /metrics serves; the webhook's metrics are registered on it unless `metrics` is given. */
  registry: Registry;
  metrics?: WebhookMetrics;
  /** Cache sizes and sync flags for the gauges, when the app registers the metrics itself. */
  cacheGauges?: CacheGaugeSource;
  /** Serving key and certificate (PEM); omitted for plain HTTP (app.inject tests only). */
  https?: { key: string | Buffer; cert: string | Buffer };
  /** The process's logger (platform/log.ts); omitted, nothing is logged. */
  logger?: Logger;
  bodyLimit?: number;
  requestTimeoutMs?: number;
  headersTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  connectionsCheckingIntervalMs?: number;
}

const MiB = 1024 * 1024;

/** Every default in one place, each with why. */
export const APP_DEFAULTS = {
  // The API server accepts request bodies up to 3 MiB, so a Pod can be that large. An UPDATE
  // review carries the new object and the old one (each at most 3 MiB), plus the review's
  // own fields (userInfo, options, kind/resource): 2 x 3 MiB + 1 MiB of headroom. Smaller
  // would turn large pods' updates into 413s (failing open, letting a forged plan through
  // until the controller corrects it); larger only lets non-API-server clients waste memory.
  bodyLimit: 7 * MiB,
  // The API server gives up on us after timeoutSeconds (5 s in deploy/); a request still
  // arriving after 10 s is not from it, and must not hold a connection and its buffers.
  requestTimeoutMs: 10_000,
  headersTimeoutMs: 5_000,
  // Longer than Go's HTTP client idle timeout (90 s), so the API server always closes an
  // idle connection first and never sends a review on a socket we are closing.
  keepAliveTimeoutMs: 120_000,
  // TLS handshakes that never finish (default 120 s) would otherwise pile up sockets.
  handshakeTimeoutMs: 10_000,
  // How often Node enforces requestTimeout/headersTimeout (default 30 s: too coarse).
  connectionsCheckingIntervalMs: 1_000,
} as const;

const ms = (min: number) => ({ type: 'integer', minimum: min, maximum: 3_600_000 }) as const;
const optionsSchema = {
  type: 'object',
  properties: {
    bodyLimit: { type: 'integer', minimum: 1024, maximum: 64 * MiB },
    requestTimeoutMs: ms(100),
    headersTimeoutMs: ms(100),
    keepAliveTimeoutMs: ms(100),
    handshakeTimeoutMs: ms(100),
    connectionsCheckingIntervalMs: ms(10),
  },
} as const;
const validateOptions = new Ajv({ allErrors: true, strict: true }).compile(optionsSchema);

type Tunables = { [K in keyof typeof APP_DEFAULTS]: number };

function checkOptions(opts: AppOptions): Tunables {
  // Only the tunables that were given are validated; the rest take APP_DEFAULTS.
  const given = opts as unknown as Record<string, unknown>;
  const numbers = Object.fromEntries(
    Object.keys(APP_DEFAULTS)
      .filter((k) => given[k] !== undefined)
      .map((k) => [k, given[k]]),
  );
  if (!validateOptions(numbers)) {
    const detail = validateOptions.errors!.map((e) => `${e.instancePath.slice(1)} ${e.message ?? ''}`).join('; ');
    throw new WebhookError('OVNKR_ERR_APP_OPTIONS', detail);
  }
  const merged: Tunables = { ...APP_DEFAULTS, ...numbers };
  if (merged.headersTimeoutMs > merged.requestTimeoutMs) {
    throw new WebhookError(
      'OVNKR_ERR_APP_OPTIONS',
      `headersTimeoutMs (${merged.headersTimeoutMs}) must not exceed requestTimeoutMs (${merged.requestTimeoutMs})`,
    );
  }
  if (!opts.admit || !Array.isArray(opts.admit.keys) || opts.admit.keys.length === 0) {
    throw new WebhookError('OVNKR_ERR_APP_OPTIONS', 'admit.keys must hold at least one plan key (the first one signs)');
  }
  if (opts.admit.mode !== 'default' && opts.admit.mode !== 'opt-in') {
    throw new WebhookError('OVNKR_ERR_APP_OPTIONS', `admit.mode must be "default" or "opt-in", got ${JSON.stringify(opts.admit.mode)}`);
  }
  if (typeof opts.readiness !== 'function') throw new WebhookError('OVNKR_ERR_APP_OPTIONS', 'readiness must be a function');
  if (!opts.registry) throw new WebhookError('OVNKR_ERR_APP_OPTIONS', 'registry is required (a prom-client Registry)');
  return merged;
}

/** Whether a request's logger writes debug lines (pino's isLevelEnabled; fastify's null logger has none). */
const debugOn = (log: FastifyBaseLogger): boolean =>
  (log as { isLevelEnabled?: (l: string) => boolean }).isLevelEnabled?.('debug') === true;

const HTTP_OUTCOMES: Record<number, RequestOutcome> = { 413: 'too-large', 415: 'unsupported-media-type' };

/** Build the webhook app (not listening). Throws WebhookError OVNKR_ERR_APP_OPTIONS on bad options. */
export function buildApp(opts: AppOptions): FastifyInstance {
  const o = checkOptions(opts);
  const metrics = opts.metrics ?? createWebhookMetrics(opts.registry, opts.cacheGauges);
  const server = {
    bodyLimit: o.bodyLimit,
    requestTimeout: o.requestTimeoutMs,
    keepAliveTimeout: o.keepAliveTimeoutMs,
    // A log line per request at admission rates would drown the logs; decisions are logged instead.
    logController: new LogController({ disableRequestLogging: true }),
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
  };
  const app: FastifyInstance = opts.https
    ? (Fastify({
        ...server,
        https: {
          key: opts.https.key,
          cert: opts.https.cert,
          minVersion: 'TLSv1.2',
          handshakeTimeout: o.handshakeTimeoutMs,
          // http.Server options, which https.createServer takes too.
          headersTimeout: o.headersTimeoutMs,
          requestTimeout: o.requestTimeoutMs,
          connectionsCheckingInterval: o.connectionsCheckingIntervalMs,
        },
      }) as unknown as FastifyInstance)
    : (Fastify(server) as unknown as FastifyInstance);

  const outcomes = new WeakMap<FastifyRequest, RequestOutcome>();
  // The API server sends application/json only; a text body is a 415, not something to parse.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req: FastifyRequest, reply: FastifyReply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    // One line at error level; the stack only at debug level (no stack traces in normal logs).
    if (status === 500) {
      req.log.error({ err: err.message, code: err.code }, 'unexpected error');
      req.log.debug({ stack: err.stack }, 'unexpected error: stack');
    }
    void reply.code(status).send({ code: err.code ?? 'OVNKR_ERR_INTERNAL', message: status === 500 ? 'internal error' : err.message });
  });

  // A callback hook, not an async one: no promise per request.
  app.addHook('onResponse', (req, reply, done) => {
    if (req.routeOptions.url === '/mutate') {
      const outcome = outcomes.get(req) ?? HTTP_OUTCOMES[reply.statusCode] ?? (reply.statusCode < 500 ? 'bad-request' : 'failed-open');
      metrics.observeRequest(outcome, reply.elapsedTime / 1000);
    }
    done();
  });

  app.post('/mutate', async (req, reply) => {
    const parsed = parseReview(req.body);
    if (!parsed.ok) {
      req.log.info({ code: parsed.code }, parsed.message);
      return reply.code(400).send({ code: parsed.code, message: parsed.message });
    }
    const { review, decision } = admit(parsed.review, opts.admit);
    outcomes.set(req, decision.outcome);
    metrics.observeDecision(decision);
    const warn = decision.overwritten !== undefined || decision.outcome === 'failed-open';
    // The fields of the line are gathered only for a line that is written (debug is off in production).
    if (warn || debugOn(req.log)) {
      const r = parsed.review.request;
      const fields = { uid: r.uid, namespace: r.namespace, name: r.name, operation: r.operation, dryRun: r.dryRun === true, decision };
      if (warn) req.log.warn(fields, 'plan annotation corrected or admission failed open');
      else req.log.debug(fields, 'admitted');
    }
    return review;
  });

  app.get('/healthz', async (_req, reply) => {
    const l = opts.liveness?.() ?? { alive: true, detail: '' };
    if (l.alive) return reply.type('text/plain').send('ok\n');
    return reply.code(503).type('text/plain').send(`not alive: ${l.detail}\n`);
  });

  app.get('/readyz', async (_req, reply) => {
    const r = opts.readiness();
    return reply
      .code(r.ready ? 200 : 503)
      .type('text/plain')
      .send(`${r.ready ? 'ok' : 'not ready'}: ${r.detail}\n`);
  });

  app.get('/metrics', async (_req, reply) => reply.type(opts.registry.contentType).send(await opts.registry.metrics()));

  return app;
}
