/**
 * Prometheus metrics of the webhook, registered on a Registry passed in (never the
 * global one), so tests and the controller can share or separate registries freely.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AdmitDecision } from './admission.js';

/** Where the cache gauges read from (ClusterCaches provides both). */
export interface CacheGaugeSource {
  sizes(): Record<string, number>;
  syncedByResource(): Record<string, boolean>;
}

/** Request outcome label: admit()'s outcomes plus the HTTP-level rejections. */
export type RequestOutcome = AdmitDecision['outcome'] | 'bad-request' | 'too-large' | 'unsupported-media-type';

export interface WebhookMetrics {
  /** Count one /mutate request and its latency (seconds) under `outcome`. */
  observeRequest(outcome: RequestOutcome, seconds: number): void;
  /** Count what admission did to the plan annotation. */
  observeDecision(decision: AdmitDecision): void;
  /** Count a list of one cache (initial sync or relist). */
  observeList(resource: string): void;
  /** Count a failed list/watch of one cache (it is retried). */
  observeWatchError(resource: string): void;
  /** Count a serving-certificate reload attempt (success or error). */
  observeCertReload(ok: boolean): void;
  /** Record the notAfter (unix seconds) of the certificate now served. */
  observeCertInUse(notAfter: number): void;
}

/** Register the webhook's metrics on `registry`. Call once per registry. */
export function createWebhookMetrics(registry: Registry, caches?: CacheGaugeSource): WebhookMetrics {
  const registers = [registry];
  const requests = new Counter({
    name: 'ovnkube_route_webhook_requests_total',
    help: 'Admission requests on /mutate, by outcome (patched, unchanged, ignored, failed-open, bad-request, too-large, unsupported-media-type).',
    labelNames: ['outcome'],
    registers,
  });
  const latency = new Histogram({
    name: 'ovnkube_route_webhook_request_duration_seconds',
    help: 'Time to answer an admission request on /mutate, by outcome.',
    labelNames: ['outcome'],
    registers,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  const stamped = new Counter({
    name: 'ovnkube_route_webhook_plans_stamped_total',
    help: 'Admitted pods that carry the plan the webhook computed.',
    registers,
  });
  const skipped = new Counter({
    name: 'ovnkube_route_webhook_plans_skipped_total',
    help: 'Admitted pods that carry no plan, by reason (host-network, opted-out, not-opted-in, no-route, name-unknown, encode-error, unsynced).',
    labelNames: ['reason'],
    registers,
  });
  const kept = new Counter({
    name: 'ovnkube_route_webhook_plans_kept_total',
    help: 'Pod updates whose verified plan was let stand, by reason (trusted-writer, unsynced-verified).',
    labelNames: ['reason'],
    registers,
  });
  const overwritten = new Counter({
    name: 'ovnkube_route_webhook_plans_overwritten_total',
    help: 'Plan annotations the webhook did not compute that it replaced or removed; signed="false" means forged.',
    labelNames: ['action', 'signed'],
    registers,
  });
  const cacheLists = new Counter({
    name: 'ovnkube_route_cache_lists_total',
    help: 'Full lists of an informer cache (initial sync and every relist, e.g. after 410 Gone).',
    labelNames: ['resource'],
    registers,
  });
  const cacheErrors = new Counter({
    name: 'ovnkube_route_cache_watch_errors_total',
    help: 'Failed lists or watches of an informer cache; each is retried with backoff.',
    labelNames: ['resource'],
    registers,
  });
  const certReloads = new Counter({
    name: 'ovnkube_route_webhook_cert_reloads_total',
    help: 'Serving certificate reloads, by result (success, error).',
    labelNames: ['result'],
    registers,
  });
  const certExpiry = new Gauge({
    name: 'ovnkube_route_webhook_cert_expiry_timestamp_seconds',
    help: 'notAfter of the serving certificate in use, as a unix timestamp.',
    registers,
  });
  if (caches) {
    new Gauge({
      name: 'ovnkube_route_cache_objects',
      help: 'Objects held by each informer cache.',
      labelNames: ['resource'],
      registers,
      collect() {
        for (const [resource, n] of Object.entries(caches.sizes())) this.set({ resource }, n);
      },
    });
    new Gauge({
      name: 'ovnkube_route_cache_synced',
      help: '1 once an informer cache has applied its first full list.',
      labelNames: ['resource'],
      registers,
      collect() {
        for (const [resource, ok] of Object.entries(caches.syncedByResource())) this.set({ resource }, ok ? 1 : 0);
      },
    });
  }
  return {
    observeRequest(outcome, seconds) {
      requests.inc({ outcome });
      latency.observe({ outcome }, seconds);
    },
    observeDecision(d) {
      if (d.plan === 'stamped') stamped.inc();
      else if (d.plan === 'none' && d.reason) skipped.inc({ reason: d.reason });
      else if (d.plan === 'kept' && d.reason) kept.inc({ reason: d.reason });
      if (d.overwritten) overwritten.inc({ action: d.overwritten.action, signed: String(d.overwritten.signed) });
    },
    observeList(resource) {
      cacheLists.inc({ resource });
    },
    observeWatchError(resource) {
      cacheErrors.inc({ resource });
    },
    observeCertReload(ok) {
      certReloads.inc({ result: ok ? 'success' : 'error' });
    },
    observeCertInUse(notAfter) {
      certExpiry.set(notAfter);
    },
  };
}
