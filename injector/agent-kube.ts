/**
 * The agent's Kubernetes I/O, with @kubernetes/client-node 1.4 (the injector never imports
 * webhook/, so this is its own, smaller informer):
 *
 * - PodSource: the pods of one node (fieldSelector spec.nodeName=<node>) through client-node's
 *   ListWatch, turned into add/update/delete calls, plus `synced` once the first full list
 *   is in. ListWatch stops for good on any error but 410 Gone; here it is restarted with a
 *   jittered back-off (0.5 s doubling to 30 s). Watches are bounded server-side
 *   (timeoutSeconds, randomised) and ask for bookmarks, so a quiet node rarely relists;
 *   a watch that ends at once without any event is re-opened only after the back-off.
 * - kubeSink: the KubeSink of report.ts: a JSON merge patch of the status annotation, a
 *   strategic merge patch of the ready condition on the status subresource (both carry
 *   metadata.uid: for a same-named successor pod the API refuses the write with 422, since
 *   the UID is immutable, so it is never written), and core/v1 Events.
 */
import {
  CoreV1Api, ListWatch, PatchStrategy, setHeaderOptions, Watch,
  type KubeConfig, type KubernetesObject,
} from '@kubernetes/client-node';
import type { Pod } from '../core/types.js';
import type { AgentLogger } from './agent-log.js';
import type { KubeSink } from './report.js';

/** What the pod source calls; the Agent implements it. */
export interface PodHandler {
  podAdded(pod: Pod): void;
  podUpdated(pod: Pod): void;
  podDeleted(pod: Pod): void;
  /** The first full list of the node's pods has been delivered. */
  podsSynced(): void;
}

const QUICK_END_MS = 1000;

/** List+watch of the pods of one node. start() then stop(). */
export class PodSource {
  private readonly lw: ListWatch<KubernetesObject>;
  private stopped = true;
  private failures = 0;
  private quickEnds = 0;
  private timer: NodeJS.Timeout | undefined;
  private syncedOnce = false;

  constructor(kc: KubeConfig, readonly nodeName: string, private readonly handler: PodHandler, private readonly log: AgentLogger,
    private readonly random: () => number = Math.random) {
    const core = kc.makeApiClient(CoreV1Api);
    const fieldSelector = `spec.nodeName=${nodeName}`;
    const list = async () => {
      const res = await core.listPodForAllNamespaces({ fieldSelector });
      this.failures = 0;
      this.log.debug('listed pods of the node', { node: nodeName, count: res.items.length });
      return res;
    };
    const inner = new Watch(kc);
    const watch = {
      watch: async (path: string, params: Record<string, string | number | boolean | undefined>,
        cb: (phase: string, obj: unknown, raw?: unknown) => void, done: (err: unknown) => void): Promise<AbortController> => {
        // ListWatch calls watch() right after it delivered a full list (or to resume): synced.
        if (!this.syncedOnce) {
          this.syncedOnce = true;
          this.handler.podsSynced();
        }
        if (this.quickEnds > 0) await new Promise((r) => setTimeout(r, this.delay(this.quickEnds - 1)));
        if (this.stopped) return new AbortController();
        const started = Date.now();
        let events = 0;
        const query = { ...params, allowWatchBookmarks: true, timeoutSeconds: Math.round(300 * (1 + this.random())) };
        return inner.watch(path, query, (phase, obj, raw) => {
          if (phase !== 'ERROR') {
            events++;
            this.failures = 0;
          }
          cb(phase, obj, raw);
        }, (err) => {
          this.quickEnds = events === 0 && Date.now() - started < QUICK_END_MS ? this.quickEnds + 1 : 0;
          done(err);
        });
      },
    };
    this.lw = new ListWatch<KubernetesObject>('/api/v1/pods', watch as unknown as Watch, list as () => Promise<never>, false, undefined, fieldSelector);
    this.lw.on('add', (o) => this.handler.podAdded(o as Pod));
    this.lw.on('update', (o) => this.handler.podUpdated(o as Pod));
    this.lw.on('delete', (o) => this.handler.podDeleted(o as Pod));
    this.lw.on('error', (err) => this.restartLater(err));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.lw.start().catch((e: unknown) => this.restartLater(e));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.lw.stop();
  }

  private delay(n: number): number {
    return Math.round(Math.min(30_000, 500 * 2 ** Math.min(n, 16)) * (0.8 + 0.4 * this.random()));
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.timer) return;
    const wait = this.delay(this.failures++);
    this.log.warn('pod list/watch failed; retrying', { node: this.nodeName, error: (err as Error)?.message ?? String(err), retryInMs: wait });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) this.lw.start().catch((e: unknown) => this.restartLater(e));
    }, wait);
  }
}

/** The production KubeSink: writes through the API server as the agent's service account. */
export function kubeSink(kc: KubeConfig, nodeName: string, now: () => Date = () => new Date()): KubeSink {
  const core = kc.makeApiClient(CoreV1Api);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
  return {
    async patchPodAnnotations(pod, annotations) {
      await core.patchNamespacedPod({ name: pod.name, namespace: pod.namespace, body: { metadata: { uid: pod.uid, annotations } } }, merge);
    },
    async patchPodCondition(pod, condition) {
      await core.patchNamespacedPodStatus({
        name: pod.name, namespace: pod.namespace, body: { metadata: { uid: pod.uid }, status: { conditions: [condition] } },
      }, strategic);
    },
    async createEvent(pod, ev) {
      const t = now();
      await core.createNamespacedEvent({
        namespace: pod.namespace,
        body: {
          metadata: { generateName: `${pod.name}.`, namespace: pod.namespace },
          involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod.name, namespace: pod.namespace, uid: pod.uid },
          type: ev.type, reason: ev.reason, message: ev.message,
          source: { component: 'ovnkube-route-injector', host: nodeName },
          reportingComponent: 'ovnkube-route-injector', reportingInstance: nodeName,
          firstTimestamp: t, lastTimestamp: t, count: 1,
        },
      });
    },
  };
}
