/**
 * Events on Routes (core/v1 Events, which `kubectl describe route` shows), deduplicated.
 *
 * Routes are cluster-scoped, so their Events live in one namespace (`default`, as kubectl
 * and client-go do for cluster-scoped objects). The Event's name is derived from the
 * Route's uid, the reason and the message, so the same finding always maps to the same
 * Event: recorded once per process (an in-memory set), and a replica that takes over, or a
 * restart, gets AlreadyExists from the API server instead of a duplicate.
 */
import { createHash } from 'node:crypto';
import { API_GROUP, API_VERSION, type Route } from '../../core/types.js';
import { classifyApiError } from '../../platform/api-errors.js';
import { eventObject } from '../../platform/events.js';
import type { RouteEvent } from './status.js';

/** Namespace that holds the Events of cluster-scoped objects. */
export const CLUSTER_EVENTS_NAMESPACE = 'default';
/** The `source.component` / `reportingComponent` of our Events. */
export const EVENT_COMPONENT = 'ovnkube-route-controller';

/** The one API call the recorder makes (CoreV1Api.createNamespacedEvent). */
export type CreateEvent = (namespace: string, event: Record<string, unknown>) => Promise<unknown>;

/** The core/v1 Event for `ev` on `route` (pure). */
export function routeEventObject(
  route: Route,
  ev: RouteEvent,
  opts: { instance: string; now: Date; namespace?: string },
): Record<string, unknown> {
  const name = route.metadata?.name ?? '';
  const uid = route.metadata?.uid ?? '';
  const hash = createHash('sha256').update(`${uid}\n${ev.reason}\n${ev.message}`).digest('hex').slice(0, 16);
  return eventObject({
    involved: {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: 'Route',
      name,
      uid,
      resourceVersion: route.metadata?.resourceVersion as string,
    },
    namespace: opts.namespace ?? CLUSTER_EVENTS_NAMESPACE,
    name: `${name.slice(0, 200)}.${hash}`,
    type: 'Warning',
    reason: ev.reason,
    message: ev.message,
    component: EVENT_COMPONENT,
    instance: opts.instance,
    now: opts.now,
  });
}

export interface EventRecorderOptions {
  create: CreateEvent;
  /** This replica's identity (reportingInstance). */
  instance: string;
  namespace?: string;
  now?: () => Date;
  /** Called once per Event actually created. */
  onRecorded?: (reason: string) => void;
  onError?: (err: unknown, route: string, reason: string) => void;
}

/** Records each distinct (Route, reason, message) once. */
export class EventRecorder {
  private readonly done = new Set<string>();

  constructor(private readonly opts: EventRecorderOptions) {}

  /** Record `events` on `route`; errors are reported and retried on the next call. Never throws. */
  async record(route: Route, events: RouteEvent[]): Promise<void> {
    for (const ev of events) {
      const obj = routeEventObject(route, ev, {
        instance: this.opts.instance,
        now: (this.opts.now ?? (() => new Date()))(),
        namespace: this.opts.namespace,
      });
      const name = (obj.metadata as { name: string }).name;
      if (this.done.has(name)) continue;
      try {
        await this.opts.create((obj.metadata as { namespace: string }).namespace, obj);
        this.opts.onRecorded?.(ev.reason);
      } catch (e) {
        // 409: another replica, or this process before a restart, recorded it already.
        if (classifyApiError(e).status !== 409) {
          this.opts.onError?.(e, route.metadata?.name ?? '', ev.reason);
          continue;
        }
      }
      // The set only bounds duplicates; past its size, forgetting is harmless (409 above).
      if (this.done.size >= 10_000) this.done.clear();
      this.done.add(name);
    }
  }
}
