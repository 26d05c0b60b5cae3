/**
 * The node agent: for every pod of the node, find its netns, verify its plan, and keep
 * the plan's routes in that netns with a RouteKeeper (one per netns), reporting back.
 *
 * Inputs are events, so the agent can be driven directly (tests) or by the API (agent-main):
 *   podAdded/podUpdated/podDeleted/podsSynced  the pod watch (agent-kube.ts PodSource)
 *   namespaceAdded/Updated/Deleted/Synced      the namespace watch (agent-kube.ts NamespaceSource)
 *   sandboxesChanged                           the CNI cache index (discovery.ts)
 *   netnsNamesChanged                          inotify on the netns dir (a netns created/deleted)
 *   keysChanged                                the plan key ring was reloaded
 * Each input only queues the pods concerned; a WorkQueue with `maxParallel` workers runs
 * sync(pod), so at most that many pod netns are being set up or re-planned at once.
 *
 * Policy decisions (see docs/injector.md):
 * - A plan that fails verification or validation is not applied, and the netns is left
 *   exactly as it is: a keeper already running keeps the last verified plan, none is
 *   started otherwise. Event PlanRejected + metric. (Key-rotation mistakes then freeze
 *   routes instead of removing them cluster-wide; an attacker who can only write their
 *   own pod's annotation gains nothing either way.)
 * - No plan, or opted out (the pod or its namespace labelled routes.k8s.ovn.org/inject=
 *   disabled): the empty plan (routes of ours removed, a saved original default route
 *   restored). Its keeper retires once nothing of ours is left. A namespace whose opt-out
 *   flips re-evaluates the node's pods of that namespace at once.
 * - A plan is acted on only once its namespace is known (agent-namespaces.ts): before the
 *   first namespace list is in, the netns is left exactly as it is; the list requeues all.
 * - hostNetwork pods are never touched.
 */
import type { PlanKey } from '../../core/plan-codec.js';
import type { Namespace, Pod } from '../../core/types.js';
import { forPod, type Logger } from '../../platform/log.js';
import { NamespaceCache } from './namespaces.js';
import { check as checkNetns, locateNetns, type LocateDeps, type Located } from './netns.js';
import type { CniAnswer, CniRequest } from '../cni/server.js';
import type { StartReport } from '../../core/injector-status.js';
import { readFileSync, realpathSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { podIPs, podKey, sameSyncInputs } from '../pod.js';
import { WorkQueue } from '../../platform/queue.js';
import { backoffMs } from '../../platform/backoff.js';
import { PodSync, podSettling, type KeeperTuning, type PodRec } from './sync.js';
import type { CniCacheIndex, PodRef } from '../discovery/discovery.js';
import type { AgentMetrics, PodCounts } from '../metrics.js';
import type { NetnsPolicy } from '../kernel/netns.js';
import type { Reporter } from '../report/report.js';
import type { AgentState } from '../routes/state.js';

export type { KeeperTuning } from './sync.js';

/** The realpath of a netns path, or the path itself when it does not resolve. */
function checkRealPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

export interface AgentOptions {
  nodeName: string;
  /** The current key ring (it may be reloaded; call keysChanged() then). */
  keys: () => readonly PlanKey[];
  policy: NetnsPolicy;
  index: Pick<CniCacheIndex, 'lookup' | 'entriesNaming'>;
  netnsAnnotation?: string | undefined;
  state: AgentState;
  reporter: Reporter;
  metrics: AgentMetrics;
  log: Logger;
  /** Pods whose netns is set up or re-planned at the same time. */
  maxParallel: number;
  keeper?: KeeperTuning;
  now?: () => number;
  /** CNI-time injection (cni-server.ts): how long cniAdd may take, and where the plugin leaves fail-open markers. */
  cni?: { timeoutMs: number; missedDir: string };
}

/** Pod label that opts a pod out of CNI-time injection (its routes then follow asynchronously). */
export const CNI_INJECT_LABEL = 'routes.k8s.ovn.org/cni-inject';

/** What a CNI ADD request said about a pod's new sandbox. */
interface CniHint {
  netns: string;
  containerId: string;
  at: number;
  /** Set once answered: 'applied', or why the routes were not written during CNI ADD. */
  answer?: string;
}

/** What the agent knows about one pod (tests, diagnostics). */
export interface PodView {
  uid: string;
  netns?: string;
  source?: string;
  kept: boolean;
  /** The keeper is applying right now (tests: an apply seen in flight). */
  applying?: boolean;
  planHash?: string;
  /** Why the pod has no plan of its own in force: no-plan, opted-out, namespace-opted-out, namespaces-unsynced, ... */
  reason?: string;
}

/** The node agent. Feed it events; stop() closes every keeper and leaves the routes in place. */
export class Agent {
  private readonly pods = new Map<string, PodRec>();
  private readonly byName = new Map<string, string>();
  /** Annotation netns paths proven to hold the pod's IP (agent-netns.ts), per "<uid> ...". */
  private readonly verified = new Set<string>();
  private readonly namespaces = new NamespaceCache();
  private readonly queue: WorkQueue;
  private readonly sync: PodSync;
  private synced = false;
  private stopped = false;
  /** CNI ADD requests by pod UID (their sandbox, and what they were answered). */
  private readonly cniHints = new Map<string, CniHint>();
  /** Callers waiting for a pod to be known, by UID. */
  private readonly podWaiters = new Map<string, Set<() => void>>();
  /** Callers waiting for a sync of a pod that starts after they asked, by UID. */
  private readonly syncWaiters = new Map<string, Array<{ after: number; done: () => void }>>();
  private runSeq = 0;

  constructor(private readonly opts: AgentOptions) {
    const locate: LocateDeps = {
      index: opts.index,
      policy: opts.policy,
      netnsAnnotation: opts.netnsAnnotation,
      verified: this.verified,
      podByName: (namespace, name) => {
        const uid = this.byName.get(`${namespace}/${name}`);
        const rec = uid ? this.pods.get(uid) : undefined;
        if (rec && !rec.deleted) return rec.pod;
        return this.synced ? undefined : 'unknown';
      },
    };
    opts.metrics.countPods(() => this.countPods());
    this.sync = new PodSync({
      ...opts,
      namespace: (name) => this.namespaces.info(name),
      locate: (pod) => this.locate(pod, locate),
      requeue: (uid) => this.queue.add(uid),
      stopped: () => this.stopped,
      startOf: (uid, loc) => this.startOf(uid, loc),
      requeueAfter: (uid, ms) => this.queue.addAfter(uid, ms),
      holdForCni: (uid, pod, loc) => this.holdForCni(uid, pod, loc),
    });
    this.queue = new WorkQueue({
      concurrency: opts.maxParallel,
      handler: (uid) => this.run(uid),
      onError: (uid, e) => {
        const rec = this.pods.get(uid);
        // One line at error level; the stack only at debug level (no stack traces in normal logs).
        const plog = forPod(opts.log, rec ? podKey(rec.pod) : uid);
        plog.error({ error: (e as Error).message ?? String(e) }, 'pod sync failed; retrying');
        plog.debug({ stack: (e as Error).stack ?? '' }, 'pod sync failed: stack');
        opts.metrics.failure('apply-error');
        const n = rec ? ++rec.failures : 1;
        this.queue.addAfter(uid, backoffMs(n - 1, { initialMs: 1000, maxMs: 60_000 }));
      },
    });
    this.queue.start();
  }

  podAdded(pod: Pod): void {
    this.upsert(pod);
  }

  podUpdated(pod: Pod): void {
    this.upsert(pod);
  }

  podDeleted(pod: Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const rec = this.pods.get(uid);
    if (!rec) return;
    rec.deleted = true;
    const k = podKey(pod);
    if (this.byName.get(k) === uid) this.byName.delete(k);
    this.queue.add(uid);
  }

  /**
   * The first full pod list is in: state entries of pods that are not on this node any
   * more (deleted while the agent was down) are removed.
   */
  podsSynced(): void {
    if (this.synced) return;
    this.synced = true;
    try {
      const removed = this.opts.state.collect(new Set([...this.pods.keys()].filter((u) => !this.pods.get(u)!.deleted)));
      if (removed.length) this.opts.log.info({ keys: removed }, 'removed state of pods no longer on this node');
    } catch (e) {
      this.opts.metrics.failure('state-error');
      this.opts.log.error({ dir: this.opts.state.defaultsDir, error: (e as Error).message }, 'cannot clean the state dir');
    }
  }

  /** Whether the first pod list has been delivered. */
  get podsAreSynced(): boolean {
    return this.synced;
  }

  /** A namespace appeared (or was listed). */
  namespaceAdded(ns: Namespace): void {
    this.namespaceChanged(ns);
  }

  /** A namespace changed; only a flip of its opt-out label re-evaluates its pods. */
  namespaceUpdated(ns: Namespace): void {
    this.namespaceChanged(ns);
  }

  /** A namespace is gone (its pods are gone or going; they keep what they have meanwhile). */
  namespaceDeleted(ns: Namespace): void {
    this.namespaces.delete(ns);
  }

  /** The first full namespace list is in: pods whose plan waited for it are looked at now. */
  namespacesSynced(): void {
    if (!this.namespaces.markSynced() || this.stopped) return;
    this.opts.log.info({ namespaces: this.namespaces.size, pods: this.pods.size }, 'namespaces listed; plans may be applied');
    this.resyncAll();
  }

  /** Whether the first namespace list has been delivered (until then no plan is applied). */
  get namespacesAreSynced(): boolean {
    return this.namespaces.synced;
  }

  /** CNI cache entries of these pods changed (a sandbox appeared, changed or went). */
  sandboxesChanged(refs: PodRef[]): void {
    for (const r of refs) {
      if (r.uid && this.pods.has(r.uid)) this.queue.add(r.uid);
      const uid = this.byName.get(`${r.namespace}/${r.name}`);
      if (uid) this.queue.add(uid);
    }
  }

  /** Files of the netns dir changed: pods kept there, or still looking for a netns, look again. */
  netnsNamesChanged(names: Set<string>): void {
    for (const [uid, rec] of this.pods) {
      const base = rec.netns?.realPath.split('/').pop();
      if (!rec.netns || (base !== undefined && names.has(base))) this.queue.add(uid);
    }
  }

  /** The key ring changed: every pod is looked at again (refused plans may verify now). */
  keysChanged(): void {
    this.resyncAll();
  }

  /** Queue every pod (the periodic backstop for missed events). */
  resyncAll(): void {
    for (const uid of this.pods.keys()) this.queue.add(uid);
  }

  /** Resolves when no pod is queued or being synced (keepers may still be applying). */
  settled(): Promise<void> {
    return this.queue.idle();
  }

  /** Highest number of pods synced at the same time so far. */
  get maxParallelSeen(): number {
    return this.queue.maxActiveSeen;
  }

  /** What the agent knows about a pod (by UID). */
  view(uid: string): PodView | undefined {
    const r = this.pods.get(uid);
    if (!r) return undefined;
    return {
      uid,
      kept: !!r.keeper,
      ...(r.keeper?.applying ? { applying: true } : {}),
      ...(r.netns ? { netns: r.netns.realPath, source: r.netns.source } : {}),
      ...(r.inForce ? { planHash: r.inForce.hash } : {}),
      ...(r.reason ? { reason: r.reason } : {}),
    };
  }

  /** Number of pods tracked. */
  get size(): number {
    return this.pods.size;
  }

  /** Stop: no more syncs; every keeper closed; routes and state stay as they are. */
  stop(): void {
    this.stopped = true;
    void this.queue.stop();
    for (const rec of this.pods.values()) this.sync.closeKeeper(rec);
  }

  private namespaceChanged(ns: Namespace): void {
    const name = ns.metadata?.name;
    if (!this.namespaces.set(ns) || !this.namespaces.synced || this.stopped || !name) return;
    // Before the first list is in, namespacesSynced() requeues every pod instead.
    const info = this.namespaces.info(name);
    this.opts.log.info(
      { namespace: name, optedOut: info.known && info.optedOut },
      'namespace appeared or its opt-out changed; re-evaluating its pods',
    );
    for (const [uid, rec] of this.pods) if (rec.pod.metadata?.namespace === name) this.queue.add(uid);
  }

  /**
   * CNI ADD of a pod's new sandbox (the CNI plugin, through cni-server.ts): write the pod's
   * plan into `req.netns` now and answer once it is there, or why not, within the CNI timeout.
   * The plan is the pod's signed annotation, exactly as for every other apply; the netns is
   * checked like any other. What was answered is remembered for the pod's status.
   */
  async cniAdd(req: CniRequest): Promise<CniAnswer> {
    const t0 = Date.now();
    const timeoutMs = this.opts.cni?.timeoutMs ?? 2500;
    const deadline = t0 + timeoutMs;
    const hint: CniHint = { netns: req.netns, containerId: req.containerId, at: t0 };
    let tPod = 0; // how long the pod took to reach the agent from the API, if it was not there yet
    const answer = (a: CniAnswer, result: string): CniAnswer => {
      hint.answer = a.ok ? 'applied' : a.reason;
      this.opts.metrics.cniRequest(result, (Date.now() - t0) / 1000);
      const fields = {
        pod: `${req.namespace}/${req.name}`,
        sandbox: req.containerId.slice(0, 12),
        ms: Date.now() - t0,
        waitedForPodMs: tPod,
      };
      if (a.ok) this.opts.log.info({ ...fields, plan: a.plan, applied: a.applied, skipped: a.skipped }, 'routes written during CNI ADD');
      else this.opts.log.info({ ...fields, reason: a.reason }, 'routes not written during CNI ADD; they follow once possible');
      return a;
    };
    if (this.stopped) return answer({ ok: false, reason: 'the agent is stopping' }, 'not-applied');
    this.cniHints.set(req.uid, hint);
    const rec = await this.waitForPod(req.uid, deadline);
    tPod = Date.now() - t0;
    if (!rec)
      return answer(
        { ok: false, reason: `the agent has not seen pod ${req.namespace}/${req.name} (UID ${req.uid}) from the API yet` },
        'pod-unknown',
      );
    if (rec.pod.metadata?.labels?.[CNI_INJECT_LABEL] === 'disabled') {
      this.cniHints.delete(req.uid);
      return answer({ ok: false, reason: `the pod is labelled ${CNI_INJECT_LABEL}=disabled` }, 'opted-out');
    }
    const synced = await this.syncAfterNow(req.uid, deadline);
    if (!synced) {
      const a = answer({ ok: false, reason: `the routes were not in place within ${timeoutMs} ms` }, 'timeout');
      const late = this.pods.get(req.uid);
      if (late?.netns && late.netns.realPath === checkRealPath(req.netns))
        this.sync.noteStart(late, { mode: 'after-start', reason: a.ok ? '' : a.reason });
      return a;
    }
    const cur = this.pods.get(req.uid);
    const real = checkRealPath(req.netns);
    const here = cur?.netns && cur.netns.realPath === real ? cur : undefined;
    // The loopback cache file may have led the agent to this netns before Multus made the
    // pod's interfaces, and that apply skipped the routes of the devices missing then. CNI
    // ADD of this plugin runs after them all: apply now, so the answer is what is in place.
    const keeper = here?.keeper;
    if (keeper && here.inForce?.result.skipped.length) {
      const left = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([
        keeper.resync().then(
          () => true,
          () => true,
        ),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), Math.max(0, left));
        }),
      ]).finally(() => clearTimeout(timer));
      if (!done) return answer({ ok: false, reason: `the routes were not in place within ${timeoutMs} ms` }, 'timeout');
    }
    if (here?.inForce) {
      // Written now or already (the loopback cache file may have led the agent there first):
      // either way the routes are in place before the pod's containers start.
      this.sync.noteStart(here, { mode: 'cni' });
      const r = here.inForce.result;
      return answer(
        { ok: true, plan: here.inForce.hash, applied: r.unchanged.length + r.added.length + r.replaced.length, skipped: r.skipped.length },
        'applied',
      );
    }
    const why = cur?.reason ?? cur?.netnsProblem ?? 'nothing to apply';
    return answer({ ok: false, reason: why }, 'not-applied');
  }

  /** Where the pod's netns is: the CNI cache, unless a CNI ADD named a sandbox the cache does not show yet. */
  private async locate(pod: Pod, deps: LocateDeps): Promise<Located> {
    const r = await locateNetns(pod, deps);
    const hint = this.cniHints.get(pod.metadata?.uid ?? '');
    if (!hint || (r.ok && (r.containerId === hint.containerId || r.path === hint.netns))) return r;
    if (r.ok && r.seenAt !== undefined && r.seenAt > hint.at) return r; // a newer sandbox than the request's
    const h = checkNetns(hint.netns, deps.policy, 'cni-add');
    return h.ok ? { ...h, seenAt: hint.at, containerId: hint.containerId } : r;
  }

  /**
   * With CNI-time injection, a sandbox first seen through its loopback cache file while the
   * pod is still being set up is left to its CNI ADD (which comes once Multus has made every
   * device), for at most the CNI timeout from when it was seen; then it is written as usual
   * (a node where the plugin is not chained loses that much, once per sandbox).
   */
  private holdForCni(uid: string, pod: Pod, loc: Extract<Located, { ok: true }>): number {
    const cni = this.opts.cni;
    if (!cni || loc.source !== 'cni-cache' || !podSettling(pod)) return 0;
    const hint = this.cniHints.get(uid);
    if (hint && (hint.containerId === loc.containerId || hint.netns === loc.path)) return 0;
    const left = cni.timeoutMs - (Date.now() - (loc.seenAt ?? Date.now()));
    return left > 0 ? left : 0;
  }

  /**
   * How the routes of a new sandbox arrive (for its status): written during CNI ADD; or after
   * the pod started, because the plugin could not reach the agent (its marker file) or the
   * agent could not write them in time (the request's answer).
   */
  private startOf(uid: string, loc: Extract<Located, { ok: true }>): StartReport | undefined {
    const cni = this.opts.cni;
    if (!cni) return undefined;
    const hint = this.cniHints.get(uid);
    if (hint && (hint.containerId === loc.containerId || hint.netns === loc.path)) {
      if (hint.answer === undefined || hint.answer === 'applied') return { mode: 'cni' };
      return { mode: 'after-start', reason: hint.answer };
    }
    if (!loc.containerId) return undefined;
    const marker = join(cni.missedDir, loc.containerId);
    let reason: string;
    try {
      reason = readFileSync(marker, 'utf8').slice(0, 300).trim();
    } catch {
      return undefined; // the plugin did not run for it, or it got an answer
    }
    try {
      unlinkSync(marker);
    } catch {
      /* gone */
    }
    this.opts.metrics.cniMissed();
    return { mode: 'after-start', reason: `the CNI plugin could not reach the agent: ${reason}` };
  }

  private waitForPod(uid: string, deadline: number): Promise<PodRec | undefined> {
    const now = this.pods.get(uid);
    if (now) return Promise.resolve(now);
    return new Promise((resolve) => {
      const set = this.podWaiters.get(uid) ?? new Set();
      this.podWaiters.set(uid, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (!set.size) this.podWaiters.delete(uid);
        resolve(this.pods.get(uid));
      };
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      set.add(done);
    });
  }

  /** Queue the pod and resolve true once a sync of it that started after this call finished (false at the deadline). */
  private syncAfterNow(uid: string, deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const list = this.syncWaiters.get(uid) ?? [];
      this.syncWaiters.set(uid, list);
      const w = {
        after: this.runSeq,
        done: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const timer = setTimeout(
        () => {
          const l = this.syncWaiters.get(uid);
          if (l) l.splice(l.indexOf(w), 1);
          resolve(false);
        },
        Math.max(0, deadline - Date.now()),
      );
      list.push(w);
      this.queue.add(uid);
    });
  }

  private upsert(pod: Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid || this.stopped) return;
    const k = podKey(pod);
    const prev = this.byName.get(k);
    if (prev && prev !== uid) {
      // A new pod of the same name: the watch may never send the old one's DELETE (relist).
      const old = this.pods.get(prev);
      if (old) this.podDeleted(old.pod);
    }
    this.byName.set(k, uid);
    const known = this.pods.get(uid);
    const ipsBefore = known ? podIPs(known.pod).join(',') : '';
    // Only what the agent writes changed (mostly the echo of its own status write): the
    // decision stands; the status is compared again (and rewritten if someone changed it).
    const sameInputs = known !== undefined && !known.deleted && sameSyncInputs(known.pod, pod);
    const rec = known ?? { uid, pod, deleted: false, failures: 0 };
    rec.pod = pod;
    this.pods.set(uid, rec);
    for (const w of this.podWaiters.get(uid) ?? []) w();
    if (sameInputs) {
      this.opts.reporter.recheck(pod);
      return;
    }
    this.opts.reporter.observe(pod);
    this.queue.add(uid);
    // New pod IPs are evidence for pods whose cache files name the same netns (agent-netns.ts):
    // look again at the pods that have no netns yet.
    if (podIPs(pod).join(',') !== ipsBefore) for (const [u, r] of this.pods) if (!r.netns && u !== uid) this.queue.add(u);
  }

  /** Pod syncs run so far (diagnostics, tests). */
  get syncRuns(): number {
    return this.runSeq;
  }

  private async run(uid: string): Promise<void> {
    const seq = ++this.runSeq;
    try {
      await this.runOnce(uid);
    } finally {
      const list = this.syncWaiters.get(uid);
      if (list) {
        const ready = list.filter((w) => w.after < seq);
        const rest = list.filter((w) => w.after >= seq);
        if (rest.length) this.syncWaiters.set(uid, rest);
        else this.syncWaiters.delete(uid);
        for (const w of ready) w.done();
      }
    }
  }

  private async runOnce(uid: string): Promise<void> {
    const rec = this.pods.get(uid);
    if (!rec || this.stopped) return;
    if (rec.deleted) {
      this.sync.release(rec, 'pod deleted', true);
      this.pods.delete(uid);
      this.cniHints.delete(uid);
      this.opts.reporter.forget(uid);
      for (const v of this.verified) if (v.startsWith(`${uid} `)) this.verified.delete(v);
      return;
    }
    await this.sync.sync(rec);
    rec.failures = 0;
  }

  /** The pod gauges' counts (read at scrape time). */
  private countPods(): PodCounts {
    let kept = 0;
    let waiting = 0;
    for (const r of this.pods.values()) {
      if (r.keeper) kept++;
      if (!r.netns && r.waiting) waiting++;
    }
    return { tracked: this.pods.size, kept, waiting };
  }
}
