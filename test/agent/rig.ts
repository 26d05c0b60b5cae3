/**
 * Test rig for the node agent on the real kernel: a real Agent wired like agent-main.ts
 * (CniCacheIndex on a temp CNI cache dir with inotify, the netns dir watch on
 * /var/run/netns, the state dir in a temp dir, real netns made with test/util/netns.ts),
 * with the pod and namespace watches replaced by direct calls and the API writes landing
 * in MemoryApi. By default the rig delivers a full namespace list holding `default` (no
 * labels) at start, as NamespaceSource would; `namespaces` and `namespacesListed` change that.
 *
 * MemoryApi is a tiny in-memory pod store standing in for the API server's side of the
 * sink: it applies the agent's annotation and condition patches to its copy of the pod and
 * hands the result back to the agent as a watch update would (the e2e tier does the same
 * against a real kube-apiserver).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { Test } from 'tap';
import { encodePlan, planKeyFromSecret, type PlanKey } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { Agent, type KeeperTuning } from '../../injector/agent/agent.js';
import { silentLogger, type Logger } from '../../platform/log.js';
import { CniCacheIndex } from '../../injector/discovery/discovery.js';
import { DirWatcher } from '../../injector/discovery/watch.js';
import { createAgentMetrics } from '../../injector/metrics.js';
import { Reporter, type KubeSink, type PodCondition, type PodId } from '../../injector/report/report.js';
import { AgentState } from '../../injector/routes/state.js';
import { makePod, type TestNetns, type TestPod } from '../util/netns.js';
import { until as untilBase } from '../util/until.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** {@link untilBase} with the rig's pace: checked every 20 ms, 30 s by default. */
export const until = <T>(what: string, cond: () => T | Promise<T>, ms = 30_000): Promise<NonNullable<T>> => untilBase(what, cond, ms, 20);

/** The API side: pods by UID, Events, and every write the agent made. */
export class MemoryApi implements KubeSink {
  readonly pods = new Map<string, Pod>();
  readonly events: { pod: PodId; type: string; reason: string; message: string }[] = [];
  readonly writes: { kind: 'annotations' | 'condition'; pod: PodId; body: unknown }[] = [];
  /** Set to make the next writes fail (as an unreachable API server would). */
  failWrites = 0;
  private rv = 1;
  onUpdate: (pod: Pod) => void = () => {};

  put(pod: Pod): Pod {
    const p = structuredClone(pod);
    p.metadata!.resourceVersion = String(++this.rv);
    this.pods.set(p.metadata!.uid!, p);
    return p;
  }

  private target(id: PodId): Pod {
    const p = this.pods.get(id.uid);
    if (!p || p.metadata?.name !== id.name || p.metadata?.namespace !== id.namespace) {
      throw Object.assign(new Error(`pod ${id.namespace}/${id.name} (${id.uid}) not found`), { statusCode: 404 });
    }
    if (this.failWrites > 0) {
      this.failWrites--;
      throw Object.assign(new Error('injected API failure'), { statusCode: 503 });
    }
    return structuredClone(p);
  }

  async patchPodAnnotations(id: PodId, annotations: Record<string, string>): Promise<void> {
    const p = this.target(id);
    p.metadata!.annotations = { ...p.metadata!.annotations, ...annotations };
    this.writes.push({ kind: 'annotations', pod: id, body: annotations });
    this.onUpdate(this.put(p));
  }

  async patchPodCondition(id: PodId, condition: PodCondition): Promise<void> {
    const p = this.target(id);
    const st = (p.status ??= {}) as { conditions?: PodCondition[] };
    st.conditions = [...(st.conditions ?? []).filter((c) => c.type !== condition.type), condition];
    this.writes.push({ kind: 'condition', pod: id, body: condition });
    this.onUpdate(this.put(p));
  }

  async createEvent(id: PodId, ev: { type: 'Normal' | 'Warning'; reason: string; message: string }): Promise<void> {
    this.events.push({ pod: id, ...ev });
  }

  eventsOf(uid: string, reason?: string): { reason: string; message: string }[] {
    return this.events.filter((e) => e.pod.uid === uid && (reason === undefined || e.reason === reason));
  }
}

export interface RigOptions {
  cacheDir?: string;
  stateDir?: string;
  keys?: PlanKey[];
  netnsAnnotation?: string;
  maxParallel?: number;
  keeper?: KeeperTuning;
  log?: Logger;
  /** Namespaces (name -> labels) delivered at start. Default: { default: {} }. */
  namespaces?: Record<string, Record<string, string>>;
  /** Deliver those namespaces as the first full list (namespacesSynced) at start. Default true. */
  namespacesListed?: boolean;
}

/** One running agent and everything around it. */
export interface Rig {
  agent: Agent;
  api: MemoryApi;
  /** The agent's reporter (its idle() says every report due has been written). */
  reporter: Reporter;
  index: CniCacheIndex;
  registry: Registry;
  key: PlanKey;
  cacheDir: string;
  stateDir: string;
  nodeName: string;
  /** Put a pod in the API and tell the agent (add or update). */
  apply(pod: Pod): Pod;
  /** Delete a pod from the API and tell the agent. */
  remove(pod: Pod): void;
  /** Add or relabel a namespace and tell the agent (as the namespace watch would). */
  namespace(name: string, labels?: Record<string, string>): void;
  /** A metric's value (summed over label sets matching `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Stop this agent (keepers closed, routes and state left as they are). */
  stop(): void;
  /**
   * A simulated pod: a netns wired like the mission's pod (makePod), the pod in the API with
   * its plan signed by the rig's key, and its CNI cache file naming that netns.
   */
  sandbox(o: PodObjectOptions & { eth1?: boolean }): { ns: TestNetns; p: TestPod; pod: Pod };
}

/** A random plan key (a test key, never a real one). */
export function testKey(): PlanKey {
  return planKeyFromSecret(randomBytes(32));
}

/** Start an agent rig; everything is stopped and removed in t.teardown. */
export async function startRig(t: Test, o: RigOptions = {}): Promise<Rig> {
  const cacheDir = o.cacheDir ?? mkdtempSync(join(tmpdir(), 'ovrt-cni-'));
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'ovrt-state-'));
  if (!o.cacheDir) t.teardown(() => rmSync(cacheDir, { recursive: true, force: true }));
  if (!o.stateDir) t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const key = o.keys?.[0] ?? testKey();
  const keys = o.keys ?? [key];
  const nodeName = 'node-1';
  const registry = new Registry();
  const metrics = createAgentMetrics(registry);
  const log = o.log ?? silentLogger;
  const api = new MemoryApi();
  const reporter = new Reporter(api, nodeName, metrics, log);
  let agent: Agent | undefined;
  const index = new CniCacheIndex(cacheDir, {
    log,
    rescanMs: 0,
    onChange: (refs) => agent?.sandboxesChanged(refs),
    onParseError: () => metrics.failure('cni-cache-unparsable'),
  });
  agent = new Agent({
    nodeName,
    keys: () => keys,
    policy: { netnsDir: '/var/run/netns' },
    index,
    netnsAnnotation: o.netnsAnnotation,
    state: new AgentState(stateDir),
    reporter,
    metrics,
    log,
    maxParallel: o.maxParallel ?? 4,
    keeper: { resyncMs: 0, debounceMs: 20, ...o.keeper },
  });
  const a = agent;
  api.onUpdate = (p) => a.podUpdated(p);
  const netnsWatch = new DirWatcher('/var/run/netns', { log, content: false, onNames: (n) => a.netnsNamesChanged(n) });
  const nsSeen = new Set<string>();
  const namespace = (name: string, labels: Record<string, string> = {}): void => {
    const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...labels } } };
    if (nsSeen.has(name)) a.namespaceUpdated(ns);
    else a.namespaceAdded(ns);
    nsSeen.add(name);
  };
  for (const [name, labels] of Object.entries(o.namespaces ?? { default: {} })) namespace(name, labels);
  if (o.namespacesListed !== false) a.namespacesSynced();
  await index.start();
  netnsWatch.start();
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    netnsWatch.close();
    index.close();
    a.stop();
  };
  t.teardown(stop);
  const apply = (pod: Pod): Pod => {
    const known = api.pods.has(pod.metadata!.uid!);
    const stored = api.put(pod);
    if (known) a.podUpdated(stored);
    else a.podAdded(stored);
    return stored;
  };
  return {
    agent: a,
    api,
    reporter,
    index,
    registry,
    key,
    cacheDir,
    stateDir,
    nodeName,
    stop,
    apply,
    namespace,
    remove(pod) {
      const stored = api.pods.get(pod.metadata!.uid!) ?? pod;
      api.pods.delete(pod.metadata!.uid!);
      a.podDeleted(stored);
    },
    sandbox(o) {
      const p = makePod(t, { eth1: o.eth1 !== false });
      const pod = apply(makePodObject({ key, ...o }));
      writeCacheFile(cacheDir, pod, p.pod.path);
      return { ns: p.pod, p, pod };
    },
    async metric(name, labels = {}) {
      const m = registry.getSingleMetric(name);
      if (!m) throw new Error(`no metric ${name}`);
      const v = await m.get();
      return v.values
        .filter(
          (x) =>
            Object.entries(labels).every(([k, want]) => String(x.labels[k]) === want) &&
            !(x as { metricName?: string }).metricName?.endsWith('_bucket') &&
            !(x as { metricName?: string }).metricName?.endsWith('_sum'),
        )
        .reduce((s, x) => s + x.value, 0);
    },
  };
}

/** A pod of node-1 with a fresh UID; `plan` is signed for its namespace with `key` (as the webhook does). */
export interface PodObjectOptions {
  name: string;
  namespace?: string;
  plan?: Plan;
  key?: PlanKey;
  planValue?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  hostNetwork?: boolean;
  readinessGate?: boolean;
  podIPs?: string[];
  uid?: string;
}

export function makePodObject(o: PodObjectOptions): Pod {
  const namespace = o.namespace ?? 'default';
  const annotations: Record<string, string> = { ...o.annotations };
  if (o.planValue !== undefined) annotations[PLAN_ANNOTATION] = o.planValue;
  else if (o.plan) annotations[PLAN_ANNOTATION] = encodePlan(o.plan, { namespace, ...(o.key ? { key: o.key } : {}) });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace, uid: o.uid ?? randomUUID(), labels: { ...o.labels }, annotations },
    spec: {
      nodeName: 'node-1',
      containers: [{ name: 'c', image: 'x' }],
      ...(o.hostNetwork ? { hostNetwork: true } : {}),
      ...(o.readinessGate ? { readinessGates: [{ conditionType: 'routes.k8s.ovn.org/ready' }] } : {}),
    },
    status: { phase: 'Running', ...(o.podIPs ? { podIP: o.podIPs[0], podIPs: o.podIPs.map((ip) => ({ ip })) } : {}) },
  };
}

/**
 * The sandbox ID a runtime would give `pod`'s sandbox at `sandbox` (stable for the pair, so a
 * rewrite of the same sandbox hits the same file, and a new sandbox gets a new ID).
 */
export function sandboxIdOf(pod: Pod, sandbox: string): string {
  return createHash('sha256').update(`${pod.metadata!.uid}\0${sandbox}`).digest('hex');
}

/**
 * The CNI cache file libcni writes for a pod's network, as containerd 1.6 + Multus wrote them
 * on the real node (test/injector/fixtures/containerd-1.6): compact JSON, the sandbox ID as
 * containerId, and the top-level `netns` key of current libcni only when asked (`netnsKey`).
 */
export function cacheFileText(
  pod: Pod,
  sandbox: string,
  o: { network?: string; ifName?: string; containerId?: string; netnsKey?: boolean } = {},
): string {
  const cid = o.containerId ?? sandboxIdOf(pod, sandbox);
  return JSON.stringify({
    kind: 'cniCacheV1',
    containerId: cid,
    config: 'e30=',
    ifName: o.ifName ?? 'lo',
    networkName: o.network ?? 'cni-loopback',
    cniArgs: [
      ['K8S_POD_NAME', pod.metadata!.name],
      ['K8S_POD_INFRA_CONTAINER_ID', cid],
      ['K8S_POD_UID', pod.metadata!.uid],
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', pod.metadata!.namespace],
    ],
    capabilityArgs: {},
    result: {
      cniVersion: '0.3.1',
      dns: {},
      interfaces: [{ mac: '00:00:00:00:00:00', name: o.ifName ?? 'lo', sandbox }],
      ips: [{ address: '127.0.0.1/8', interface: 0, version: '' }],
    },
    ...(o.netnsKey ? { netns: sandbox } : {}),
  });
}

/**
 * Write a pod's cache file into `dir` as libcni does: `<network>-<sandbox ID>-<ifname>`, mode
 * 0600, written in place (or renamed into place with `atomic`). Returns its path.
 */
export function writeCacheFile(
  dir: string,
  pod: Pod,
  sandbox: string,
  o: { network?: string; ifName?: string; atomic?: boolean; netnsKey?: boolean } = {},
): string {
  const file = join(dir, `${o.network ?? 'cni-loopback'}-${sandboxIdOf(pod, sandbox)}-${o.ifName ?? 'lo'}`);
  const text = cacheFileText(pod, sandbox, o);
  if (o.atomic) {
    const tmp = join(dir, `.tmp-${randomUUID()}`);
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, file);
  } else writeFileSync(file, text, { mode: 0o600 });
  return file;
}

/** Files in the agent's saved-defaults dir. */
export function stateFiles(stateDir: string): string[] {
  try {
    return readdirSync(join(stateDir, 'agent', 'defaults')).sort();
  } catch {
    return [];
  }
}

/** The mission's target plan: shared with the kernel layer's tests. */
export { MISSION_PLAN } from '../util/netns.js';

/** Routes of ours (proto 111) in a netns, as compact lines. */
export function ownedLines(lines: string[]): string[] {
  return lines.filter((l) => l.endsWith('proto 111')).sort();
}
