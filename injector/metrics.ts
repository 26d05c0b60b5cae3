/**
 * Prometheus metrics of the node agent, registered on a Registry passed in (never the
 * global one), and the small HTTP listener that serves them with /healthz and /readyz.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ApplyResult } from './routes/engine.js';

/** Failure reasons counted by ovnkube_route_injector_failures_total. */
export type FailureReason =
  | 'plan-rejected' // signature or validation failed; nothing applied
  | 'netns-refused' // outside the netns dir, the host netns, claimed by another pod, pod IP not in it
  | 'netns-gone' // the netns vanished (during an apply or while kept)
  | 'apply-error' // the kernel or the netlink socket failed an apply as a whole
  | 'cni-install' // the CNI plugin could not be installed (CNI-time injection off on this node)
  | 'route-skipped' // one route could not be written (collision, unreachable gateway, device down, ...; not a missing device)
  | 'backoff' // a netns keeps drifting; its keeper backed off
  | 'report-error' // patching the pod's status annotation/condition or creating an Event failed
  | 'state-error' // the state dir could not be read or written
  | 'cni-cache-unparsable' // a CNI cache file that did not parse (maybe being written)
  | 'cni-cache-too-large' // a CNI cache file over the size cap; refused unread
  | 'inotify-overflow' // the kernel dropped inotify events (IN_Q_OVERFLOW); a rescan followed
  | 'netns-ambiguous' // two CNI cache files name one netns and the evidence does not pick one
  | 'api-list-watch'; // a list or watch of the API server failed or timed out; retried with back-off

export interface AgentMetrics {
  /** Netns seen (by discovery) -> every route of the plan in place, once per sandbox. */
  observeInjectionLatency(seconds: number): void;
  /** Count what one apply did; `drift` when it repaired changes made by someone else. */
  observeApply(trigger: string, result: ApplyResult, drift: boolean): void;
  failure(reason: FailureReason, n?: number): void;
  /**
   * Routes of a plan announced as not written, by skip reason. A route whose device the pod
   * does not have (dev-missing) is by design; every other reason also counts as a failure.
   * Not called while a pod's interfaces are still being set up (PodSync).
   */
  routesSkipped(reason: string, n: number): void;
  /** One CNI ADD request answered (result: applied, not-applied, timeout, pod-unknown, opted-out). */
  cniRequest(result: string, seconds: number): void;
  /** A pod whose routes came after it started because the CNI plugin could not reach the agent. */
  cniMissed(): void;
  planRejected(code: string): void;
  /**
   * Where the pod gauges (tracked, kept, waiting for a netns) are counted, at scrape time:
   * counting them on every event would cost O(pods) per event, O(N²) for a node-wide change.
   */
  countPods(source: () => PodCounts): void;
}

/** The agent's pods, as the gauges show them. */
export interface PodCounts {
  tracked: number;
  kept: number;
  waiting: number;
}

/** Register the agent's metrics on `registry`. Call once per registry. */
export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  const latency = new Histogram({
    name: 'ovnkube_route_injector_injection_latency_seconds',
    help: "Time from the agent first seeing a pod's netns (CNI cache file or netns annotation) to every route of its plan being in place.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const applies = new Counter({
    name: 'ovnkube_route_injector_applies_total',
    help: 'Applies of a plan to a netns, by trigger (start, plan, event, resync).',
    labelNames: ['trigger'],
    registers,
  });
  const applied = new Counter({
    name: 'ovnkube_route_injector_routes_applied_total',
    help: 'Routes added or replaced in pod netns to bring them to their plan.',
    registers,
  });
  const removed = new Counter({
    name: 'ovnkube_route_injector_routes_removed_total',
    help: 'Routes of ours deleted from pod netns (no longer in the plan).',
    registers,
  });
  const restored = new Counter({
    name: 'ovnkube_route_injector_routes_restored_total',
    help: 'Routes put back: kind="drift" routes of a plan rewritten after someone else changed or deleted them; kind="default" original default routes restored.',
    labelNames: ['kind'],
    registers,
  });
  const failures = new Counter({
    name: 'ovnkube_route_injector_failures_total',
    help: 'Failures by reason (plan-rejected, netns-refused, netns-gone, apply-error, route-skipped, backoff, report-error, state-error, cni-cache-unparsable).',
    labelNames: ['reason'],
    registers,
  });
  const cniRequests = new Counter({
    name: 'ovnkube_route_injector_cni_requests_total',
    help: "CNI ADD requests of the CNI plugin, by result (applied: routes in place before the pod's containers start; not-applied, timeout, pod-unknown, opted-out: they follow asynchronously).",
    labelNames: ['result'],
    registers,
  });
  const cniSeconds = new Histogram({
    name: 'ovnkube_route_injector_cni_request_seconds',
    help: 'Time the agent took to answer a CNI ADD request (what CNI-time injection adds to pod start).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const cniMissed = new Counter({
    name: 'ovnkube_route_injector_cni_missed_total',
    help: 'Pods whose routes were written after they started because the CNI plugin could not reach the agent (fail-open).',
    registers,
  });
  const skipped = new Counter({
    name: 'ovnkube_route_injector_routes_skipped_total',
    help: 'Plan routes announced as not written, by reason (dev-missing: the pod lacks that device, by design; others also count as failures).',
    labelNames: ['reason'],
    registers,
  });
  const rejected = new Counter({
    name: 'ovnkube_route_injector_plans_rejected_total',
    help: 'Plans refused (not applied), by decode error code (unsigned, bad-signature, unknown-key, invalid, malformed-json, too-large).',
    labelNames: ['code'],
    registers,
  });
  let counts: (() => PodCounts) | null = null;
  const counted = (name: string, help: string, of: keyof PodCounts): Gauge =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        if (counts) this.set(counts()[of]);
      },
    });
  counted('ovnkube_route_injector_pods_tracked', 'Pods of this node the agent tracks.', 'tracked');
  counted('ovnkube_route_injector_netns_kept', 'Pod netns whose routes are being kept (one keeper each).', 'kept');
  counted(
    'ovnkube_route_injector_pods_waiting_for_netns',
    'Pods that should get routes but whose netns is not found (yet): no CNI cache file, no usable netns annotation. Stuck non-zero: check --cni-cache-dir.',
    'waiting',
  );
  // Zero-initialise the labelled series so dashboards see them before the first event.
  for (const k of ['drift', 'default']) restored.inc({ kind: k }, 0);
  return {
    observeInjectionLatency: (s) => latency.observe(s),
    observeApply(trigger, r, drift) {
      applies.inc({ trigger });
      if (drift) restored.inc({ kind: 'drift' }, r.added.length + r.replaced.length);
      else applied.inc(r.added.length + r.replaced.length);
      removed.inc(r.removed.length);
      restored.inc({ kind: 'default' }, r.restored.length);
    },
    failure: (reason, n = 1) => failures.inc({ reason }, n),
    cniRequest(result, seconds) {
      cniRequests.inc({ result });
      cniSeconds.observe(seconds);
    },
    cniMissed: () => cniMissed.inc(),
    routesSkipped(reason, n) {
      skipped.inc({ reason }, n);
      if (reason !== 'dev-missing') failures.inc({ reason: 'route-skipped' }, n);
    },
    planRejected: (code) => {
      rejected.inc({ code });
      failures.inc({ reason: 'plan-rejected' });
    },
    countPods: (source) => {
      counts = source;
    },
  };
}

/**
 * Serve GET /metrics (the registry), /healthz (200 while `alive()` says so: no list+watch
 * loop is dead; the DaemonSet's liveness probe checks it) and /readyz (200 once `ready()`
 * says so: the pod list and the CNI cache are in). Resolves with the listening server;
 * close it to stop.
 */
export async function serveMetrics(
  registry: Registry,
  addr: { host: string; port: number },
  ready: () => boolean,
  alive: () => { alive: boolean; detail: string } = () => ({ alive: true, detail: 'ok' }),
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
        (e: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`cannot collect metrics: ${e.message}\n`),
      );
    } else if (path === '/healthz') {
      const l = alive();
      res.writeHead(l.alive ? 200 : 503, { 'Content-Type': 'text/plain' }).end(l.alive ? 'ok\n' : `not alive: ${l.detail}\n`);
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ok\n' : 'pods or CNI cache not loaded yet\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
    }
  });
  // Scrapes are tiny; do not let a slow client hold a socket for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
