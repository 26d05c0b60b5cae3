/**
 * The one core/v1 Event writer of both processes: the controller's Events on Routes
 * (webhook/controller/events.ts) and the agent's Events on pods (injector/agent/kube.ts) are
 * built here, so both have the same shape and their messages are cut at one length.
 */

/** Longest Event message written (the API server's limit for an events.k8s.io note is 1 kB). */
export const EVENT_MESSAGE_MAX = 1024;

export interface EventSpec {
  /** The object the Event is about. */
  involved: { apiVersion: string; kind: string; name: string; uid: string; namespace?: string; resourceVersion?: string };
  /** The Event's own namespace. */
  namespace: string;
  /** A fixed name (deduplicates across replicas and restarts), or a generateName prefix. */
  name?: string;
  generateName?: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /** source.component and reportingComponent. */
  component: string;
  /** reportingInstance (and source.host when `host` is set). */
  instance: string;
  host?: string;
  now: Date;
}

/** The core/v1 Event object (pure); the message is cut at EVENT_MESSAGE_MAX characters. */
export function eventObject(s: EventSpec): Record<string, unknown> {
  const time = s.now.toISOString();
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { ...(s.name !== undefined ? { name: s.name } : { generateName: s.generateName }), namespace: s.namespace },
    involvedObject: s.involved,
    reason: s.reason,
    message: s.message.slice(0, EVENT_MESSAGE_MAX),
    type: s.type,
    count: 1,
    firstTimestamp: time,
    lastTimestamp: time,
    source: { component: s.component, ...(s.host !== undefined ? { host: s.host } : {}) },
    reportingComponent: s.component,
    reportingInstance: s.instance,
  };
}
