/**
 * Prometheus metrics of the controller, registered on the Registry passed in (the webhook
 * process serves them on its /metrics with the webhook's own).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Live values the gauges read when scraped. */
export interface ControllerGaugeSource {
  queueDepth(): number;
  queueRetrying(): number;
  podsCached(): number;
  isLeader(): boolean;
}

export interface ControllerMetrics {
  /** A pod's plan annotation was set or removed; `previous` says what it carried before. */
  observePatched(action: 'set' | 'remove', previous: 'none' | 'ours' | 'foreign'): void;
  /** A pod patch failed (it is retried unless the pod is gone). */
  observePatchFailure(reason: string): void;
  /** One reconcile of one pod took `seconds` (rate-limit wait and API call included). */
  observeReconcile(result: 'unchanged' | 'patched' | 'gone' | 'skipped' | 'error', seconds: number): void;
  /** A Route status write: success, conflict (retried) or error (retried). */
  observeStatusWrite(result: 'success' | 'conflict' | 'error'): void;
  /** An Event was created on a Route. */
  observeEvent(reason: string): void;
  /** This replica became (true) or stopped being (false) the leader. */
  observeLeadership(leading: boolean): void;
}

/** Register the controller's metrics on `registry`. Call once per registry. */
export function createControllerMetrics(registry: Registry, source: ControllerGaugeSource): ControllerMetrics {
  const registers = [registry];
  const patched = new Counter({
    name: 'ovnkube_route_controller_pods_patched_total',
    help: 'Pod plan annotations the controller set or removed, by action and by what the pod carried before (none, ours: a plan we signed but stale, foreign: not signed by us, e.g. forged).',
    labelNames: ['action', 'previous'],
    registers,
  });
  const failures = new Counter({
    name: 'ovnkube_route_controller_patch_failures_total',
    help: 'Failed pod patches, by reason (conflict, throttled, forbidden, invalid, server, network, rewritten: admission stored another plan); each is retried with backoff.',
    labelNames: ['reason'],
    registers,
  });
  const reconciles = new Histogram({
    name: 'ovnkube_route_controller_reconcile_duration_seconds',
    help: 'Time to reconcile one pod (resolve, rate-limit wait, patch), by result.',
    labelNames: ['result'],
    registers,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const statusWrites = new Counter({
    name: 'ovnkube_route_controller_route_status_writes_total',
    help: 'Route status writes, by result (success, conflict, error).',
    labelNames: ['result'],
    registers,
  });
  const events = new Counter({
    name: 'ovnkube_route_controller_events_total',
    help: 'Events recorded on Routes, by reason (InvalidRule, RouteConflict).',
    labelNames: ['reason'],
    registers,
  });
  const transitions = new Counter({
    name: 'ovnkube_route_controller_leader_transitions_total',
    help: 'Times this replica started or stopped leading.',
    labelNames: ['to'],
    registers,
  });
  new Gauge({
    name: 'ovnkube_route_controller_leader',
    help: '1 while this replica is the leader (the one that patches pods and writes Route status), else 0.',
    registers,
    collect() {
      this.set(source.isLeader() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ovnkube_route_controller_queue_depth',
    help: 'Pods waiting in the work queue (not counting those waiting for a retry).',
    registers,
    collect() {
      this.set(source.queueDepth());
    },
  });
  new Gauge({
    name: 'ovnkube_route_controller_queue_retrying',
    help: 'Pods waiting for a retry after a failure.',
    registers,
    collect() {
      this.set(source.queueRetrying());
    },
  });
  new Gauge({
    name: 'ovnkube_route_controller_pods_cached',
    help: "Pods held by the controller's pod cache.",
    registers,
    collect() {
      this.set(source.podsCached());
    },
  });
  return {
    observePatched(action, previous) {
      patched.inc({ action, previous });
    },
    observePatchFailure(reason) {
      failures.inc({ reason });
    },
    observeReconcile(result, seconds) {
      reconciles.observe({ result }, seconds);
    },
    observeStatusWrite(result) {
      statusWrites.inc({ result });
    },
    observeEvent(reason) {
      events.inc({ reason });
    },
    observeLeadership(leading) {
      transitions.inc({ to: leading ? 'leader' : 'follower' });
    },
  };
}
