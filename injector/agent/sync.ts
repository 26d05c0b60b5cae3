/**
 * PodSync: one pod's reconcile step, run by the Agent's work queue (never twice at once
 * for a pod). It decides the plan (agentIntent, agent-namespaces.ts), locates the netns, and starts, re-plans,
 * retires or releases the pod's RouteKeeper; keeper reports become metrics, the status
 * report and Events.
 *
 * Netns identity: a pod's netns is pinned by inode. If the pod's sandbox is replaced (new
 * netns), the old keeper is closed and its state removed before a new one starts. Two pods
 * never share a netns: the second claimant is refused.
 */
import { planHash, type PlanKey } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { forPod, type Logger } from '../../platform/log.js';
import type { Located, NetnsSource } from './netns.js';
import { agentIntent, type AgentIntent, type NamespaceInfo } from './namespaces.js';
import { EMPTY_PLAN, isEmptyPlan, podKey } from '../pod.js';
import type { AgentMetrics } from '../metrics.js';
import { isNetnsError, type NetnsId, type NetnsPolicy } from '../kernel/netns.js';
import type { Reporter } from '../report/report.js';
import type { InForce } from '../report/status.js';
import type { StartReport } from '../../core/injector-status.js';
import { RouteKeeper, type KeeperOptions, type KeeperReport } from '../routes/keeper.js';
import type { SkippedItem } from '../routes/engine.js';
import type { AgentState } from '../routes/state.js';

/** Keeper settings the agent passes through (see RouteKeeper). */
export type KeeperTuning = Pick<
  KeeperOptions,
  'resyncMs' | 'debounceMs' | 'maxRestores' | 'windowMs' | 'backoffInitialMs' | 'backoffMaxMs' | 'maxInFlight'
>;

/** The agent's record of one pod. */
export interface PodRec {
  uid: string;
  pod: Pod;
  deleted: boolean;
  failures: number;
  netns?: {
    path: string;
    realPath: string;
    id: NetnsId;
    source: NetnsSource;
    key: string;
    seenAt: number;
    latencyDone: boolean;
    /** The empty plan was applied here and nothing of ours is left (no keeper needed). */
    clean: boolean;
    /** How this sandbox's routes arrived, with CNI-time injection (reported in the status). */
    start?: StartReport;
  };
  keeper?: RouteKeeper;
  /** The plan given to the keeper (the last verified one). */
  kept?: { plan: Plan; hash: string };
  /** The last apply's plan and result. */
  inForce?: InForce;
  /** The plan value last refused, so a refusal is counted and announced once. */
  rejectedValue?: string;
  /** The last netns problem announced (deduplication). */
  netnsProblem?: string;
  /** The pod should get routes (a plan, or the empty plan) but its netns is not found yet. */
  waiting?: boolean;
  /** Why the pod has no plan of its own in force (the last decision's reason), for logs and view(). */
  reason?: string;
  /** Skips of the last apply not announced yet: the pod's interfaces were still being set up, or they are new. */
  skipsHeld?: boolean;
  /** When the current skips were first seen outside the pod's setup (they are announced once they last). */
  skipsSince?: number | undefined;
  /** The re-check that announces skips that lasted. */
  skipsTimer?: NodeJS.Timeout | undefined;
}

export interface PodSyncDeps {
  nodeName: string;
  keys: () => readonly PlanKey[];
  /** What is known of a namespace (the agent's NamespaceCache). */
  namespace: (name: string) => NamespaceInfo;
  policy: NetnsPolicy;
  state: AgentState;
  reporter: Reporter;
  metrics: AgentMetrics;
  log: Logger;
  keeper?: KeeperTuning;
  now?: () => number;
  locate: (pod: Pod) => Promise<Located>;
  requeue: (uid: string) => void;
  /** Look at the pod again after `ms`. */
  requeueAfter?: (uid: string, ms: number) => void;
  /**
   * How long to leave a newly found sandbox alone because its CNI ADD (CNI-time injection)
   * will write its routes; 0: write them now.
   */
  holdForCni?: (uid: string, pod: Pod, loc: Extract<Located, { ok: true }>) => number;
  /** True once the agent stopped: no keeper may be started any more. */
  stopped: () => boolean;
  /** How long a skip must last before it is announced (Event, metric); default 3 s. */
  skipConfirmMs?: number;
  /** How the routes of a newly found sandbox arrive (CNI-time injection), for its status. */
  startOf?: (uid: string, loc: Extract<Located, { ok: true }>) => StartReport | undefined;
}

const podHasPlan = (pod: Pod): boolean => pod.metadata?.annotations?.[PLAN_ANNOTATION] !== undefined;

/** Skip reasons that are expected while the runtime and CNI plugins are still creating a pod's interfaces. */
const SETTLING_SKIPS = new Set<string>(['dev-missing', 'dev-down']);

/**
 * Whether the pod's network is still being set up, by the kubelet's own evidence: its
 * PodReadyToStartContainers condition is not True yet (a new sandbox: CNI ADD, and Multus's
 * delegates after it, still running), or a Pending pod has no such condition and no
 * container status yet (the kubelet has not posted its first status). A pod with no status
 * at all (no kubelet runs for it) is not settling: its state is all there is to report.
 */
export function podSettling(pod: Pod): boolean {
  const st = pod.status;
  if (!st) return false;
  const cond = st.conditions?.find((c) => c.type === 'PodReadyToStartContainers');
  if (cond) return cond.status !== 'True';
  return st.phase === 'Pending' && !st.containerStatuses?.length;
}

/** Whether the pod is being deleted (its sandbox, interfaces and netns are going away). */
export const podTerminating = (pod: Pod): boolean => !!pod.metadata?.deletionTimestamp;
const idKey = (id: NetnsId): string => `${id.dev}:${id.ino}`;
const EMPTY_HASH = planHash(EMPTY_PLAN);

function describeSkipped(s: SkippedItem[]): string {
  return (
    s
      .slice(0, 8)
      .map((x) => `${x.dst}${x.dev ? ` dev ${x.dev}` : ''}: ${x.reason} (${x.detail})`)
      .join('; ') + (s.length > 8 ? `; and ${s.length - 8} more` : '')
  );
}

export class PodSync {
  /** netns identity -> pod UID holding it. */
  private readonly claims = new Map<string, string>();
  private readonly now: () => number;

  constructor(private readonly d: PodSyncDeps) {
    this.now = d.now ?? Date.now;
  }

  /**
   * Reconcile one pod: what it should get (intent), which netns is its (claim), and then
   * the routes in it (converge). Throws only on unexpected errors (the queue retries).
   */
  async sync(rec: PodRec): Promise<void> {
    const pod = rec.pod;
    if (podTerminating(pod)) {
      // The runtime is removing the pod's interfaces and netns: keeping its routes now would
      // only fight the teardown. The routes stay as they are; the netns goes with the pod.
      rec.waiting = false;
      if (rec.netns) this.release(rec, 'the pod is being deleted', true);
      return;
    }
    const intent = agentIntent(pod, this.d.keys(), this.d.namespace(pod.metadata?.namespace ?? ''));
    rec.waiting = false;
    this.noteReason(rec, intent);
    if (intent.kind === 'defer') return; // fail safe: the netns is left exactly as it is until the namespace is known
    if (intent.kind === 'ignore') {
      if (rec.netns) this.release(rec, intent.reason, true);
      return;
    }
    if (intent.kind === 'rejected') return this.rejected(rec, intent);
    if (!(await this.claim(rec))) return;
    rec.rejectedValue = undefined;
    await this.converge(rec, intent.kind === 'plan' ? { plan: intent.plan, hash: intent.hash } : { plan: EMPTY_PLAN, hash: EMPTY_HASH });
  }

  /** A plan annotation that does not verify: announced once per value; the netns is left as it is. */
  private rejected(rec: PodRec, intent: Extract<AgentIntent, { kind: 'rejected' }>): void {
    const { reporter, metrics, log } = this.d;
    const pod = rec.pod;
    if (rec.rejectedValue !== intent.value) {
      rec.rejectedValue = intent.value;
      metrics.planRejected(intent.code);
      forPod(log, podKey(pod)).warn(
        { code: intent.code, error: intent.error, keptPlan: rec.kept?.hash ?? null },
        'plan refused; the netns is left as it is',
      );
      reporter.warn(
        pod,
        'PlanRejected',
        `the plan annotation was refused and not applied (${intent.code}): ${intent.error}. ` +
          (rec.keeper ? `The last verified plan ${rec.kept?.hash} stays in force.` : 'No routes were changed.'),
      );
    }
    reporter.report(pod, {
      kind: 'rejected',
      code: intent.code,
      error: intent.error,
      ...(rec.keeper && rec.inForce ? { inForce: rec.inForce } : {}),
    });
  }

  /**
   * Find the pod's netns and make it the pod's (released from a replaced sandbox, refused
   * when another pod holds it, held back for the CNI ADD of a new sandbox). True when
   * rec.netns is the pod's netns now.
   */
  private async claim(rec: PodRec): Promise<boolean> {
    const pod = rec.pod;
    const loc = await this.d.locate(pod);
    rec.waiting = !loc.ok && loc.kind === 'wait';
    if (!loc.ok) {
      this.noNetns(rec, loc);
      return false;
    }
    const holder = this.claims.get(idKey(loc.id));
    if (holder !== undefined && holder !== rec.uid) {
      this.noNetns(rec, {
        ok: false,
        kind: 'refused',
        reason: `netns ${loc.path} is already the netns of another pod (UID ${holder}); refusing it`,
      });
      return false;
    }
    if (rec.netns && idKey(rec.netns.id) !== idKey(loc.id)) this.release(rec, 'sandbox replaced', true);
    if (!rec.netns && !this.adopt(rec, loc)) return false;
    rec.netnsProblem = undefined;
    return true;
  }

  /** Take a newly found netns as the pod's; false when its CNI ADD will write it (held). */
  private adopt(rec: PodRec, loc: Extract<Located, { ok: true }>): boolean {
    const { log } = this.d;
    const pod = rec.pod;
    // A new sandbox the CNI plugin will bring during its CNI ADD (all devices there by then):
    // writing it now, from the loopback cache file, would only be done again, and slow that ADD.
    const hold = this.d.holdForCni?.(rec.uid, pod, loc) ?? 0;
    if (hold > 0) {
      forPod(log, podKey(pod)).debug({ netns: loc.realPath, waitMs: hold }, 'new sandbox: its routes are written at its CNI ADD');
      this.d.requeueAfter?.(rec.uid, hold);
      return false;
    }
    rec.netns = {
      path: loc.path,
      realPath: loc.realPath,
      id: loc.id,
      source: loc.source,
      key: this.d.state.keyFor(rec.uid, loc.realPath),
      seenAt: loc.seenAt ?? this.now(),
      latencyDone: false,
      clean: false,
    };
    this.claims.set(idKey(loc.id), rec.uid);
    const start = this.d.startOf?.(rec.uid, loc);
    if (start) rec.netns.start = start;
    forPod(log, podKey(pod)).info({ netns: loc.realPath, source: loc.source, ...(start ? { start: start.mode } : {}) }, 'found pod netns');
    if (start?.mode === 'after-start') {
      forPod(log, podKey(pod)).warn(
        { why: start.reason },
        'the pod started before its routes (CNI-time injection failed open); writing them now',
      );
    }
    return true;
  }

  /** Bring the routes in the pod's netns to `target` (a keeper started, or told the new plan). */
  private async converge(rec: PodRec, target: { plan: Plan; hash: string }): Promise<void> {
    const { reporter, log } = this.d;
    const pod = rec.pod;
    if (!rec.keeper) {
      if (isEmptyPlan(target.plan) && rec.netns!.clean) {
        if (rec.inForce) reporter.report(pod, { kind: 'applied', inForce: rec.inForce });
        return;
      }
      await this.startKeeper(rec, target);
    } else if (rec.kept?.hash !== target.hash) {
      rec.kept = target;
      forPod(log, podKey(pod)).info({ plan: target.hash }, 'plan changed');
      await rec.keeper.setPlan(target.plan);
    } else if (rec.skipsHeld && !podSettling(pod)) {
      // The pod's interfaces are set up now: look again, and announce what is still skipped.
      await rec.keeper.resync();
    } else if (rec.inForce) {
      reporter.report(pod, { kind: 'applied', inForce: rec.inForce }); // the pod changed: compare the report again
    }
    this.maybeRetire(rec);
  }

  /**
   * Record how the routes of the pod's current sandbox arrived (CNI-time injection), and
   * report it when it changes what the status says.
   */
  noteStart(rec: PodRec, start: StartReport): void {
    if (!rec.netns || (rec.netns.start?.mode === start.mode && rec.netns.start.reason === start.reason)) return;
    rec.netns.start = start;
    if (rec.inForce) {
      rec.inForce = { ...rec.inForce, start };
      this.d.reporter.report(rec.pod, { kind: 'applied', inForce: rec.inForce });
    }
  }

  /** Log when the reason a pod gets no plan of its own changes (once per change, not per sync). */
  private noteReason(rec: PodRec, intent: AgentIntent): void {
    const reason = intent.kind === 'plan' || intent.kind === 'rejected' ? undefined : intent.reason;
    if (reason === rec.reason) return;
    rec.reason = reason;
    if (reason === undefined) return;
    const fields = { pod: podKey(rec.pod), reason, planAnnotation: podHasPlan(rec.pod), keptPlan: rec.kept?.hash ?? null };
    if (reason === 'opted-out' || reason === 'namespace-opted-out') {
      this.d.log.info(fields, 'opted out: no routes for the pod, routes of ours removed');
    } else if (reason === 'namespace-unknown') {
      this.d.log.info(fields, 'namespace not seen yet: the plan waits and the netns is left as it is');
    } else this.d.log.debug(fields, 'no plan applied');
  }

  /** Close the pod's keeper (routes stay), forget its netns and, with `removeState`, its saved defaults. */
  release(rec: PodRec, why: string, removeState: boolean): void {
    this.closeKeeper(rec);
    if (!rec.netns) return;
    if (this.claims.get(idKey(rec.netns.id)) === rec.uid) this.claims.delete(idKey(rec.netns.id));
    if (removeState) {
      try {
        this.d.state.remove(rec.netns.key);
      } catch (e) {
        this.d.metrics.failure('state-error');
        this.d.log.error({ key: rec.netns.key, error: (e as Error).message }, 'cannot remove state');
      }
    }
    forPod(this.d.log, podKey(rec.pod)).info({ netns: rec.netns.realPath, why }, 'released pod netns');
    rec.netns = undefined;
    rec.inForce = undefined;
  }

  /** Close the keeper (routes stay as they are). */
  closeKeeper(rec: PodRec): void {
    if (rec.skipsTimer) clearTimeout(rec.skipsTimer);
    rec.skipsTimer = undefined;
    rec.skipsSince = undefined;
    if (!rec.keeper) return;
    rec.keeper.close();
    rec.keeper = undefined;
    rec.kept = undefined;
  }

  private noNetns(rec: PodRec, loc: Extract<Located, { ok: false }>): void {
    const pod = rec.pod;
    // The netns we held is no longer the pod's (cache file removed, path gone): let it go.
    if (rec.netns) this.release(rec, loc.reason, loc.kind === 'wait');
    if (rec.netnsProblem === loc.reason) return;
    rec.netnsProblem = loc.reason;
    if (loc.kind === 'wait') {
      forPod(this.d.log, podKey(pod)).debug({ why: loc.reason }, 'waiting for the pod netns');
      return;
    }
    this.d.metrics.failure('netns-refused');
    if (loc.kind === 'refused' && loc.ambiguous) {
      this.d.metrics.failure('netns-ambiguous');
      // A rival may already hold the netns (decided before this pod was known): look again.
      for (const uid of loc.rivals ?? []) this.d.requeue(uid);
    }
    forPod(this.d.log, podKey(pod)).warn({ why: loc.reason }, 'netns refused');
    this.d.reporter.warn(pod, 'NetnsRefused', loc.reason);
    this.d.reporter.report(pod, { kind: 'refused', message: loc.reason });
  }

  private async startKeeper(rec: PodRec, target: { plan: Plan; hash: string }): Promise<void> {
    if (this.d.stopped()) return;
    const n = rec.netns!;
    const { saved, error } = this.d.state.load(n.key);
    if (error) {
      this.d.metrics.failure('state-error');
      forPod(this.d.log, podKey(rec.pod)).error({ error }, 'saved default route unreadable; moved aside, nothing to restore from it');
      this.d.reporter.warn(rec.pod, 'StateCorrupt', `the saved original default route could not be read and was moved aside: ${error}`);
    }
    const store = this.d.state.store(n.key);
    const keeper: RouteKeeper = new RouteKeeper(n.realPath, target.plan, {
      ...this.d.keeper,
      policy: this.d.policy,
      savedDefault: saved,
      saveDefault: (s) => store.save(s),
      forgetDefault: (f) => store.forget(f),
      onReport: (r) => this.onReport(rec, keeper, r),
    });
    rec.keeper = keeper;
    rec.kept = target;
    try {
      await keeper.start();
      // stop() ran while this keeper was starting: it must not outlive the agent.
      if (this.d.stopped() && rec.keeper === keeper) this.closeKeeper(rec);
    } catch (e) {
      if (rec.keeper === keeper) this.closeKeeper(rec);
      if (!isNetnsError(e)) throw e;
      if (e.code === 'gone') {
        this.d.metrics.failure('netns-gone');
        this.release(rec, e.message, true);
      } else {
        this.noNetns(rec, { ok: false, kind: 'refused', reason: e.message });
      }
    }
  }

  /**
   * Announce routes not written: counted by reason; a missing device is by design (the pod
   * lacks that network) and gets a Normal Event, anything else a Warning.
   */
  private announceSkips(pod: Pod, skipped: SkippedItem[]): void {
    const byReason = new Map<string, number>();
    for (const x of skipped) byReason.set(x.reason, (byReason.get(x.reason) ?? 0) + 1);
    for (const [reason, n] of byReason) this.d.metrics.routesSkipped(reason, n);
    const expected = skipped.every((x) => x.reason === 'dev-missing');
    const message = `${skipped.length} route(s) not written: ${describeSkipped(skipped)}`;
    if (expected) this.d.reporter.event(pod, 'Normal', 'RoutesSkipped', `${message} (the pod does not have that device)`);
    else this.d.reporter.warn(pod, 'RoutesSkipped', message);
  }

  /** An empty plan's keeper retires once nothing of ours is left and nothing is saved. */
  private maybeRetire(rec: PodRec): void {
    const k = rec.keeper;
    if (!k || !rec.kept || !isEmptyPlan(rec.kept.plan) || !rec.netns) return;
    const last = k.lastResult;
    if (!last || last.owned.length || last.skipped.length || k.savedDefaults.length) return;
    rec.netns.clean = true;
    this.closeKeeper(rec);
  }

  private onReport(rec: PodRec, keeper: RouteKeeper, r: KeeperReport): void {
    if (rec.keeper !== keeper) return; // a report of a keeper already replaced or closed
    const { metrics, reporter, log } = this.d;
    const pod = rec.pod;
    switch (r.kind) {
      case 'applied': {
        metrics.observeApply(r.trigger, r.result, r.drift);
        const inForce: InForce = {
          plan: r.plan,
          hash: planHash(r.plan),
          result: r.result,
          ...(rec.netns?.start ? { start: rec.netns.start } : {}),
        };
        rec.inForce = inForce;
        if (rec.netns && !isEmptyPlan(r.plan)) rec.netns.clean = false;
        if (r.result.changed || r.drift) {
          forPod(log, podKey(pod)).info(
            {
              trigger: r.trigger,
              drift: r.drift,
              added: r.result.added.length,
              replaced: r.result.replaced.length,
              removed: r.result.removed.length,
              restored: r.result.restored.length,
              skipped: r.result.skipped.length,
            },
            'routes applied',
          );
        }
        const skipped = r.result.skipped;
        // While the pod's interfaces are being created, a missing or down device is the normal
        // course of a start: it is applied when the device appears (a link event), and only what
        // is still skipped once the kubelet says the sandbox is ready is announced. Otherwise a
        // skip is announced once it has lasted skipConfirmMs: a sandbox being torn down or
        // recreated takes its devices away for a moment, and that is not worth an Event.
        const settlingOnly = skipped.length > 0 && podSettling(pod) && skipped.every((x) => SETTLING_SKIPS.has(x.reason));
        const confirmMs = this.d.skipConfirmMs ?? 3000;
        if (!skipped.length) rec.skipsSince = undefined;
        else if (!settlingOnly) rec.skipsSince ??= this.now();
        const lasted = rec.skipsSince === undefined ? 0 : this.now() - rec.skipsSince;
        rec.skipsHeld = settlingOnly || (skipped.length > 0 && lasted < confirmMs);
        if (skipped.length && !settlingOnly && lasted < confirmMs && !rec.skipsTimer) {
          // Look again when the skips would have lasted long enough (the report comes from that apply).
          rec.skipsTimer = setTimeout(
            () => {
              rec.skipsTimer = undefined;
              if (rec.keeper === keeper) void keeper.resync();
            },
            confirmMs - lasted + 10,
          );
          rec.skipsTimer.unref();
        }
        if (skipped.length && !rec.skipsHeld) this.announceSkips(pod, skipped);
        else if (!skipped.length && rec.netns && !rec.netns.latencyDone && !isEmptyPlan(r.plan)) {
          rec.netns.latencyDone = true;
          metrics.observeInjectionLatency(Math.max(0, this.now() - rec.netns.seenAt) / 1000);
        }
        reporter.report(pod, { kind: 'applied', inForce });
        return;
      }
      case 'backoff':
        metrics.failure('backoff');
        forPod(log, podKey(pod)).warn({ delayMs: r.delayMs, restores: r.restoresInWindow }, 'routes keep drifting; backing off');
        reporter.warn(
          pod,
          'RouteFightBackOff',
          `the pod's routes were changed back ${r.restoresInWindow} times in a short while; restoring them only every ${Math.round(r.delayMs / 1000)} s`,
        );
        return;
      case 'error':
        metrics.failure('apply-error');
        forPod(log, podKey(pod)).warn({ trigger: r.trigger, error: r.error.message }, 'apply failed; retrying');
        reporter.warn(pod, 'ApplyFailed', r.error.message);
        reporter.report(pod, { kind: 'failed', message: r.error.message });
        return;
      case 'gone':
        metrics.failure('netns-gone');
        this.release(rec, r.error.message, true);
        this.d.requeue(rec.uid); // a new sandbox may be there already
        return;
    }
  }
}
