/**
 * Reporter: writes what the agent knows about each pod back to the API, only when it
 * changes, and never blocking the work on netns.
 *
 * - The status annotation is patched when its body (plan hash, count, skipped items)
 *   differs from both what the pod carries now and what we last wrote; `time` alone never
 *   causes a write. Pods that have neither a plan annotation nor a report get none (no
 *   API write for every pod of a cluster that does not use us).
 * - The readiness condition is patched (status subresource) only for pods with the
 *   routes.k8s.ovn.org/ready readiness gate, and only when status/reason/message change.
 * - Writes of one pod are serialized; the latest wanted state wins; failures are retried
 *   with back-off (1 s doubling to 60 s); a pod that is gone (404) or was replaced by one of
 *   the same name (422: the UID each write carries no longer matches) is dropped.
 * - Events: one per (pod, reason, message), again at most once an hour.
 */
import { STATUS_ANNOTATION, PLAN_ANNOTATION, READY_CONDITION, type Pod } from '../../core/types.js';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { forPod, type Logger } from '../../platform/log.js';
import { statusCodeOf } from '../../platform/api-errors.js';
import { backoffMs } from '../../platform/backoff.js';
import { hasReadinessGate, podKey } from '../pod.js';
import type { AgentMetrics } from '../metrics.js';
import { readyCondition, statusBody, statusKey, statusValue, type PodOutcome, type ReadyCondition, type StatusBody } from './status.js';

/** A pod as the API identifies it; the UID guards writes against a same-named successor. */
export interface PodId {
  namespace: string;
  name: string;
  uid: string;
}

/** A condition as written to pod status. */
export interface PodCondition extends ReadyCondition {
  type: string;
  lastTransitionTime: string;
}

/** The API writes the agent makes. Production: agent-kube.ts; errors carry `statusCode` when HTTP. */
export interface KubeSink {
  patchPodAnnotations(pod: PodId, annotations: Record<string, string>): Promise<void>;
  patchPodCondition(pod: PodId, condition: PodCondition): Promise<void>;
  createEvent(pod: PodId, ev: { type: 'Normal' | 'Warning'; reason: string; message: string }): Promise<void>;
}

interface Slot {
  pod: Pod;
  id: PodId;
  outcome?: PodOutcome;
  running: boolean;
  dirty: boolean;
  wroteStatus?: string;
  wroteCond?: string;
  /** The status annotation value last read from the pod, and its statusKey (undefined: none or unreadable). */
  seen?: { value: string; key: string | undefined };
  /** The outcome last written or compared, its body and its statusKey. */
  wanted?: { outcome: PodOutcome; body: StatusBody; key: string };
  /** Writes failed in a row, and the delay before the next retry (backoff.ts). */
  failures: number;
  retryMs: number;
  retry?: NodeJS.Timeout;
  events: Map<string, number>;
}

const EVENT_REPEAT_MS = 3_600_000;

/** Writes pod reports and Events through a KubeSink. */
export class Reporter {
  private readonly slots = new Map<string, Slot>();
  private readonly waiters: (() => void)[] = [];

  constructor(
    private readonly sink: KubeSink,
    private readonly node: string,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The latest pod object (from the watch): what it carries is what writes are compared to. */
  observe(pod: Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const s = this.slots.get(uid);
    if (s) {
      s.pod = pod;
      // Once the watch shows what we wrote, compare with the pod again (someone may change it later).
      const has = this.hasKey(s, pod.metadata?.annotations?.[STATUS_ANNOTATION]);
      if (has !== undefined && s.wroteStatus === has) s.wroteStatus = undefined;
      const c = ((pod.status as { conditions?: PodCondition[] } | undefined)?.conditions ?? []).find((x) => x?.type === READY_CONDITION);
      if (c && s.wroteCond === `${c.status}\n${c.reason}\n${c.message}`) s.wroteCond = undefined;
    } else
      this.slots.set(uid, {
        pod,
        id: { namespace: pod.metadata!.namespace ?? '', name: pod.metadata!.name ?? '', uid },
        running: false,
        dirty: false,
        failures: 0,
        retryMs: 0,
        events: new Map(),
      });
  }

  /** Record the outcome for a pod and write what changed (asynchronously). */
  report(pod: Pod, outcome: PodOutcome): void {
    this.observe(pod);
    const s = this.slots.get(pod.metadata?.uid ?? '');
    if (!s) return;
    s.outcome = outcome;
    this.kick(s);
  }

  /** Emit a Warning Event on the pod (deduplicated). */
  warn(pod: Pod, reason: string, message: string): void {
    this.event(pod, 'Warning', reason, message);
  }

  /** Emit an Event of `type` on the pod (deduplicated by reason and message). */
  event(pod: Pod, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.observe(pod);
    const s = this.slots.get(pod.metadata?.uid ?? '');
    if (!s) return;
    const key = `${reason}\n${message}`;
    const last = s.events.get(key);
    const now = this.now().getTime();
    if (last !== undefined && now - last < EVENT_REPEAT_MS) return;
    s.events.set(key, now);
    if (s.events.size > 32) s.events.delete(s.events.keys().next().value!);
    this.sink.createEvent(s.id, { type, reason, message }).catch((e: unknown) => {
      s.events.delete(key); // not sent: allow it again
      this.metrics.failure('report-error');
      forPod(this.log, podKey(s.pod)).warn({ reason, error: (e as Error).message }, 'cannot create Event');
    });
  }

  /**
   * A newer version of the pod that changed nothing but what the agent writes (the echo of
   * its own write, or someone else's change of it): compare the last outcome with it again,
   * and write it back where it differs.
   */
  recheck(pod: Pod): void {
    this.observe(pod);
    const s = this.slots.get(pod.metadata?.uid ?? '');
    if (s?.outcome) this.kick(s);
  }

  /** Forget a deleted pod (pending retries are dropped). */
  forget(uid: string): void {
    const s = this.slots.get(uid);
    if (s?.retry) clearTimeout(s.retry);
    this.slots.delete(uid);
    this.wake();
  }

  /** Resolves when no write is running or due (retries waiting on a timer count as due). */
  idle(): Promise<void> {
    if (![...this.slots.values()].some((s) => s.running || s.dirty || s.retry)) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  private wake(): void {
    if (!this.waiters.length) return; // (every write ends here: no walk over every pod unless someone waits)
    if ([...this.slots.values()].some((s) => s.running || s.dirty || s.retry)) return;
    for (const w of this.waiters.splice(0)) w();
  }

  private kick(s: Slot): void {
    if (s.running) {
      s.dirty = true;
      return;
    }
    if (s.retry) return; // the retry will write the latest state
    s.running = true;
    s.dirty = false;
    void this.flush(s).then((ok) => {
      s.running = false;
      if (!this.slots.has(s.id.uid)) return this.wake();
      if (!ok) {
        s.retry = setTimeout(() => {
          s.retry = undefined;
          this.kick(s);
        }, s.retryMs);
        s.retry.unref();
      } else {
        s.failures = 0;
        if (s.dirty) return this.kick(s);
      }
      this.wake();
    });
  }

  /** Write what differs (status annotation, then ready condition); false when a write failed and must be retried. */
  private async flush(s: Slot): Promise<boolean> {
    const o = s.outcome;
    if (!o) return true;
    const pod = s.pod; // as it was when the flush began (the watch may update s.pod meanwhile)
    try {
      await this.writeStatus(s, o, pod);
      if (hasReadinessGate(pod)) await this.writeCondition(s, o, pod);
      return true;
    } catch (e) {
      return this.failed(s, pod, e);
    }
  }

  /** The status annotation, when it differs from what the pod carries and from what we last wrote. */
  private async writeStatus(s: Slot, o: PodOutcome, pod: Pod): Promise<void> {
    const ann = pod.metadata?.annotations ?? {};
    const relevant = ann[PLAN_ANNOTATION] !== undefined || ann[STATUS_ANNOTATION] !== undefined;
    if (!relevant) return;
    if (s.wanted?.outcome !== o) {
      const body = statusBody(o);
      s.wanted = { outcome: o, body, key: statusKey(body, this.node) };
    }
    const want = s.wanted.key;
    if (want === s.wroteStatus || want === this.hasKey(s, ann[STATUS_ANNOTATION])) return;
    const value = statusValue(s.wanted.body, this.node, this.now().toISOString());
    // Set before the write: the watch may show the result before the write returns.
    s.wroteStatus = want;
    try {
      await this.sink.patchPodAnnotations(s.id, { [STATUS_ANNOTATION]: value });
    } catch (e) {
      s.wroteStatus = undefined;
      throw e;
    }
  }

  /** The statusKey of a status annotation value (remembered for the last value read: the watch shows each many times). */
  private hasKey(s: Slot, value: string | undefined): string | undefined {
    if (value === undefined) return undefined;
    if (s.seen?.value !== value) {
      const cur = decodeInjectorStatus(value);
      s.seen = { value, key: cur ? statusKey(cur, cur.node) : undefined };
    }
    return s.seen.key;
  }

  /** The ready condition of the readiness gate, when it differs (its transition time kept when the status is the same). */
  private async writeCondition(s: Slot, o: PodOutcome, pod: Pod): Promise<void> {
    const c = readyCondition(o);
    const wantC = `${c.status}\n${c.reason}\n${c.message}`;
    const conds = (pod.status as { conditions?: PodCondition[] } | undefined)?.conditions ?? [];
    const cur = conds.find((x) => x?.type === READY_CONDITION);
    const hasC = cur ? `${cur.status}\n${cur.reason}\n${cur.message}` : undefined;
    if (wantC === hasC || wantC === s.wroteCond) return;
    const lastTransitionTime = cur && cur.status === c.status && cur.lastTransitionTime ? cur.lastTransitionTime : this.now().toISOString();
    s.wroteCond = wantC;
    try {
      await this.sink.patchPodCondition(s.id, { type: READY_CONDITION, ...c, lastTransitionTime });
    } catch (e) {
      s.wroteCond = undefined;
      throw e;
    }
  }

  /** A failed write: dropped for a pod that is gone or replaced (true), else retried later (false). */
  private failed(s: Slot, pod: Pod, e: unknown): boolean {
    const code = statusCodeOf(e);
    if (code === 404 || code === 409 || code === 422) {
      // Gone (404), or replaced by a pod of the same name: the UID we send then differs and
      // the API refuses it as an immutable-field change (422). Retrying cannot help.
      forPod(this.log, podKey(pod))[code === 404 ? 'debug' : 'warn'](
        { status: code, error: (e as Error).message.slice(0, 300) },
        'pod gone or replaced while reporting; dropping its report',
      );
      this.slots.delete(s.id.uid);
      return true;
    }
    this.metrics.failure('report-error');
    s.retryMs = backoffMs(s.failures++, { initialMs: 1000, maxMs: 60_000 });
    forPod(this.log, podKey(pod)).warn({ error: (e as Error).message, retryInMs: s.retryMs }, 'cannot report on pod; retrying');
    return false;
  }
}
