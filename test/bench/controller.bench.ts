/**
 * Controller convergence on the real API server (issue 12, part 2): one Route edit that
 * changes the plan of N pods, timed from the edit until a watch shows every one of the N pods
 * carrying the new plan annotation. The built `ovnkube-route webhook` process runs as in
 * production: admission webhook and leader-elected controller in one process, registered
 * through deploy/webhook-config.yaml, as the ServiceAccount of deploy/webhook-rbac.yaml.
 *
 * Baselines, in the same run on the same API server and the same pods, timed the same way
 * (from the first request until the watch shows all N pods changed):
 *  - the plain loop: a bare Node loop (a process of its own, as the controller has) patching one annotation of the same size
 *    on the same N pods, with the controller's concurrency and token bucket (platform/queue.ts's
 *    TokenBucket, the controller's own), as the controller's ServiceAccount (same API Priority
 *    and Fairness flow, same treatment by the webhook configuration), with the controller's
 *    own request function (platform/kube-client.ts's patchObject) over the same shared
 *    keep-alive connections (platform/kube-connections.ts);
 *  - the raw loop: the same with concurrency 32 and no token bucket.
 *
 * Each size gets a fresh control plane (kube-apiserver + etcd, no kubelet: pods stay Pending,
 * unscheduled). Each controller configuration (flag set) is a fresh webhook process on the
 * same pods; it first settles (every pod reconciled once, its queue empty) before the edit.
 *
 * Env: OVRT_BENCH_CONTROLLER_SIZES=200,1000,3000; OVRT_BENCH_CONTROLLER_CONFIGS=before,defaults
 * (`before`: the flags of issue 12, --patch-qps 20 --patch-burst 40 --patch-concurrency 4;
 * `defaults`: this build's defaults; or `qps/burst/concurrency`, e.g. 50/100/8);
 * OVRT_BENCH_CONTROLLER_REPS (default 2 below N=3000, 1 from it: the best is kept);
 * `base` or `base:qps/burst/concurrency`: an earlier build of this project in
 * OVRT_BENCH_CONTROLLER_BASE (a folder holding its dist/ and deploy/), with the issue-12 flags
 * or the ones given, to compare code before and after;
 * OVRT_BENCH_CONTROLLER_PROF=DIR: CPU profiles of the webhook process (node --cpu-prof), with
 * each edit's window on their clock in DIR/phases-N.json;
 * OVRT_BENCH_CONTROLLER_MARKS=1: the webhook logs at debug level, and each edit's row gets its
 * phases in ms from the edit (marksOf: the API server's answer to the edit, the Route event the
 * controller saw, its first patch sent, its first and last patch answered, its status writes,
 * the first and last pod the bench's watch saw changed).
 * Each round runs the edit and the two loops in another order (rotated), so whatever one step
 * leaves behind on the API server falls on each in turn.
 * Results: test/bench/results/controller.json, or OVRT_BENCH_CONTROLLER_OUT (a file name there):
 * every row with its ratio and baseline named (best of the rounds, and the ratio of the
 * medians), and per phase the CPU seconds of the webhook process (or the loop's process), of
 * kube-apiserver and etcd, API Priority and Fairness's refusals and mean queue wait for
 * workload-low, and the machine's load average.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import type { Test } from 'tap';
import { decodePlan, type PlanKey } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION } from '../../core/types.js';
import { patchObject } from '../../platform/kube-client.js';
import { shareConnections } from '../../platform/kube-connections.js';
import { TokenBucket } from '../../platform/queue.js';
import { CONTROLLER_FLAGS } from '../../webhook/controller/config.js';
import { findBinaries } from '../cluster/binaries.js';
import { startControlPlane, type ControlPlane } from '../cluster/controlplane.js';
import { kubeRequest } from '../cluster/k8s.js';
import { metricSum } from '../util/http.js';
import { until } from '../util/until.js';
import {
  applyRoute,
  createNamespace,
  expectStatus,
  installAddon,
  registerWebhook,
  startWebhook,
  type WebhookProcess,
} from '../webhook-e2e/helpers.js';
import type { BenchRow } from './measure.js';

const here = dirname(fileURLToPath(import.meta.url));
const NS = 'bench';
const ROUTE = 'bench';
const PAYLOAD = 'bench.ovnkube-route.io/payload';
const RAW_CONCURRENCY = 32;

/** A controller flag set. */
interface Limits {
  name: string;
  /** An earlier build's tree (OVRT_BENCH_CONTROLLER_BASE) to run instead of this one. */
  base?: string;
  qps: number;
  burst: number;
  concurrency: number;
}

const defaultOf = (flag: string): number => Number(CONTROLLER_FLAGS[flag]!.default);

function parseConfigs(spec: string): Limits[] {
  return spec.split(',').map((s) => {
    const c = s.trim();
    if (c === 'before') return { name: 'issue-12 flags 20/40/4', qps: 20, burst: 40, concurrency: 4 };
    if (c === 'base' || c.startsWith('base:')) {
      const base = process.env.OVRT_BENCH_CONTROLLER_BASE;
      if (!base) throw new Error('OVRT_BENCH_CONTROLLER_CONFIGS: "base" needs OVRT_BENCH_CONTROLLER_BASE, the folder of an earlier build');
      const [qps, burst, concurrency] = (c === 'base' ? '20/40/4' : c.slice(5)).split('/').map(Number);
      if (!qps || !burst || !concurrency)
        throw new Error(`OVRT_BENCH_CONTROLLER_CONFIGS: expected base or base:qps/burst/concurrency, got "${c}"`);
      return { name: `issue-12 code, flags ${qps}/${burst}/${concurrency}`, qps, burst, concurrency, base };
    }
    if (c === 'defaults') {
      const [qps, burst, concurrency] = [defaultOf('patch-qps'), defaultOf('patch-burst'), defaultOf('patch-concurrency')];
      return { name: `defaults ${qps}/${burst}/${concurrency}`, qps, burst, concurrency };
    }
    const m = /^(\d+(?:\.\d+)?)\/(\d+)\/(\d+)$/.exec(c);
    if (!m) throw new Error(`OVRT_BENCH_CONTROLLER_CONFIGS: expected before, defaults or qps/burst/concurrency, got "${c}"`);
    return { name: `flags ${c}`, qps: Number(m[1]), burst: Number(m[2]), concurrency: Number(m[3]) };
  });
}

/** A fake tap Test: collects teardowns, run in reverse by `cleanup`. */
function fakeTest(): { t: Test; cleanup: () => Promise<void> } {
  const fns: (() => unknown)[] = [];
  const t = { teardown: (fn: () => unknown) => void fns.push(fn) } as unknown as Test;
  return {
    t,
    cleanup: async () => {
      for (const f of fns.reverse()) {
        try {
          await f();
        } catch {
          /* best effort */
        }
      }
    },
  };
}

/** HTTPS options of `kc` for `path` on a shared keep-alive agent (platform/kube-connections.ts). */
async function httpsOptions(kc: KubeConfig, method: string, path: string): Promise<{ url: URL; opts: RequestOptions }> {
  const url = new URL(kc.getCurrentCluster()!.server.replace(/\/$/, '') + path);
  const opts: RequestOptions = { method, headers: { Accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  return { url, opts };
}

/**
 * Every pod of the namespace as a watch shows it: uid, plan annotation, payload annotation.
 * `waitFor(pred)` resolves when `pred` holds for all `n` pods (re-checked on each event, in O(1)
 * per event: a per-pod flag and a count).
 */
class PodWatch {
  readonly pods = new Map<string, { uid: string; plan?: string; payload?: string }>();
  private pred: ((p: { plan?: string; payload?: string }) => boolean) | undefined;
  private ok = new Set<string>();
  private wake: (() => void) | undefined;
  private want = 0;
  /** Date.now() of the first and the last pod event that made `pred` hold, in the last waitFor. */
  firstOkAt = 0;
  lastOkAt = 0;
  private req: ReturnType<typeof request> | undefined;
  failed: Error | undefined;

  private rv = '';
  private kc: KubeConfig | undefined;
  private stopped = false;
  /** Watches resumed after the API server ended one (tests of the harness, the log). */
  resumed = 0;

  /** Watch from now (a first watch lists every pod as ADDED), resuming where an ended watch stopped. */
  async start(kc: KubeConfig): Promise<void> {
    this.kc = kc;
    const { url, opts } = await httpsOptions(kc, 'GET', `/api/v1/namespaces/${NS}/pods`);
    url.searchParams.set('watch', '1');
    url.searchParams.set('allowWatchBookmarks', 'true');
    if (this.rv) url.searchParams.set('resourceVersion', this.rv);
    await new Promise<void>((resolve, reject) => {
      this.req = request(url, opts, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`watch pods: HTTP ${res.statusCode}`));
          return;
        }
        resolve();
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line) this.onEvent(JSON.parse(line) as { type: string; object: any });
          }
        });
        res.on('end', () => this.resume(new Error('the pod watch ended')));
        res.on('error', (e) => this.resume(e));
      });
      this.req.on('error', (e) => {
        reject(e);
        this.resume(e);
      });
      this.req.end();
    });
  }

  /** The API server may end a watch (its timeout, an overload): watch again from the last version seen. */
  private resume(why: Error): void {
    if (this.stopped || !this.kc) return;
    this.req?.destroy();
    this.req = undefined;
    if (this.resumed++ > 20 || !this.rv) {
      this.failed ??= why;
      this.wake?.();
      return;
    }
    setTimeout(() => {
      this.start(this.kc!).catch((e: Error) => this.resume(e));
    }, 200);
  }

  stop(): void {
    this.stopped = true;
    this.req?.destroy();
  }

  private onEvent(ev: { type: string; object: any }): void {
    const m = ev.object?.metadata;
    if (typeof m?.resourceVersion === 'string') this.rv = m.resourceVersion;
    if (ev.type === 'BOOKMARK' || ev.type === 'ERROR' || !m?.name) return;
    if (ev.type === 'DELETED') {
      this.pods.delete(m.name);
      this.ok.delete(m.name);
      return;
    }
    const a = m.annotations ?? {};
    const p = { uid: m.uid as string, plan: a[PLAN_ANNOTATION] as string | undefined, payload: a[PAYLOAD] as string | undefined };
    this.pods.set(m.name, p);
    if (!this.pred) return;
    if (this.pred(p)) {
      if (!this.ok.has(m.name)) {
        this.lastOkAt = Date.now();
        this.firstOkAt ||= this.lastOkAt;
      }
      this.ok.add(m.name);
    } else this.ok.delete(m.name);
    if (this.ok.size >= this.want) this.wake?.();
  }

  /** Resolves once `pred` holds for `n` pods; rejects after `ms` naming how many did. */
  async waitFor(n: number, pred: (p: { plan?: string; payload?: string }) => boolean, what: string, ms: number): Promise<void> {
    this.pred = pred;
    this.want = n;
    this.firstOkAt = this.lastOkAt = 0;
    this.ok = new Set([...this.pods].filter(([, p]) => pred(p)).map(([k]) => k));
    try {
      if (this.ok.size >= n) return;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what}: ${this.ok.size} of ${n} pods after ${ms / 1000} s`)), ms);
        this.wake = () => {
          clearTimeout(timer);
          if (this.failed) reject(this.failed);
          else resolve();
        };
      });
    } finally {
      this.pred = undefined;
      this.wake = undefined;
    }
  }
}

/** Whether a plan annotation verifies and routes `dst` (memoised: all pods of the namespace share a value). */
function planRoutesTo(keys: PlanKey[]): (plan: string | undefined, dst: string) => boolean {
  const memo = new Map<string, boolean>();
  return (plan, dst) => {
    if (plan === undefined) return false;
    const k = `${dst}\0${plan}`;
    let v = memo.get(k);
    if (v === undefined) {
      const d = decodePlan(plan, { namespace: NS, keys, requireSignature: true });
      v = d.ok && d.plan.routes.some((r) => r.dst === dst);
      memo.set(k, v);
    }
    return v;
  };
}

/** Run `fn` over `items` with at most `concurrency` at once. */
async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/**
 * One JSON Patch of a pod, shaped as the controller's (a uid guard and one annotation), retried
 * as the controller retries (200 ms doubling) when the API server sheds load (429, 5xx) or a
 * connection fails.
 */
async function patchPod(kc: KubeConfig, name: string, uid: string, value: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await patchPodOnce(kc, name, uid, value);
      return;
    } catch (e) {
      const code = (e as { statusCode?: number }).statusCode ?? 0;
      if (attempt >= 10 || (code !== 0 && code !== 429 && code < 500)) throw e;
      await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** attempt, 5000)));
    }
  }
}

/**
 * One JSON Patch of a pod, sent by platform/kube-client.ts's patchObject: the controller's own
 * request path (shared keep-alive connections, connection options reused), so that the loops
 * and the controller differ only in what the controller does around its requests.
 */
async function patchPodOnce(kc: KubeConfig, name: string, uid: string, value: string): Promise<void> {
  await patchObject(
    kc,
    `/api/v1/namespaces/${NS}/pods/${name}`,
    [
      { op: 'test', path: '/metadata/uid', value: uid },
      { op: 'add', path: `/metadata/annotations/${PAYLOAD.replace(/\//g, '~1')}`, value },
    ],
    { query: { fieldManager: 'bench-loop' }, timeoutMs: 60_000 },
  );
}

const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** CPU seconds (user + system) of a process, from /proc. */
function cpuSeconds(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface Scrape {
  admissions: number;
  admissionSeconds: number;
  reconciles: number;
  reconcileSeconds: number;
  patched: number;
  patchFailures: number;
  cpu: number;
  lagP99: number;
}

async function scrape(wh: WebhookProcess): Promise<Scrape> {
  const body = (await wh.get('/metrics')).body;
  return {
    admissions: metricSum(body, 'ovnkube_route_webhook_request_duration_seconds_count'),
    admissionSeconds: metricSum(body, 'ovnkube_route_webhook_request_duration_seconds_sum'),
    reconciles: metricSum(body, 'ovnkube_route_controller_reconcile_duration_seconds_count'),
    reconcileSeconds: metricSum(body, 'ovnkube_route_controller_reconcile_duration_seconds_sum'),
    patched: metricSum(body, 'ovnkube_route_controller_pods_patched_total'),
    patchFailures: metricSum(body, 'ovnkube_route_controller_patch_failures_total'),
    cpu: cpuSeconds(wh.child.pid!),
    // prom-client's event-loop delay histogram restarts at every scrape: this is the p99 since the last one.
    lagP99: metricSum(body, 'nodejs_eventloop_lag_p99_seconds'),
  };
}

interface Phase {
  seconds: number;
  /** For the controller: what its process did meanwhile. */
  admissions?: number;
  admissionMeanMs?: number;
  reconcileMeanMs?: number;
  reconciles?: number;
  patched?: number;
  patchFailures?: number;
  cpuSeconds?: number;
  lagP99Ms?: number;
  /** CPU seconds of kube-apiserver and etcd during the phase. */
  apiserverCpuSeconds?: number;
  etcdCpuSeconds?: number;
  /**
   * API Priority and Fairness during the phase, from kube-apiserver's metrics: requests it
   * refused (429) and the mean time a request of priority level workload-low (ours, and the
   * loops') waited in its queues before being served.
   */
  apfRejected?: number;
  apfWaitMeanMs?: number;
  /** The machine's 1-minute load average when the phase began. */
  loadAverage?: number;
  /** OVRT_BENCH_CONTROLLER_MARKS=1: ms from the edit to each phase (marksOf). */
  marks?: Record<string, number>;
}

/**
 * The phases of one edit, in ms from the moment the bench sent it: from the webhook's debug
 * log (the Route event the controller saw, its first and last patch answered, its status
 * writes) and from the bench's watch (the first and the last pod seen with the new plan).
 */
function marksOf(logs: Record<string, any>[], editAt: number, watch: PodWatch): Record<string, number> {
  const at = (pred: (o: Record<string, any>) => boolean): number[] =>
    logs.filter((o) => typeof o.time === 'string' && pred(o)).map((o) => Date.parse(o.time as string) - editAt);
  const patched = at((o) => o.msg === 'pod plan annotation updated');
  const routeLogs = logs.filter((o) => o.msg === 'Route changed: pods queued');
  const routeSeen = at((o) => o.msg === 'Route changed: pods queued');
  const status = at((o) => o.msg === 'Route status written');
  const sent = at((o) => o.msg === 'first pod patch after a Route change sent');
  const out: Record<string, number> = {};
  if (routeSeen.length) {
    out.routeEventSeen = routeSeen[0]!;
    // The selection of the pods the edit affects, before the first of them is queued.
    out.selectMs = Number(routeLogs[0]!.selectMs);
  }
  if (sent.length) out.firstPatchSent = sent[0]!;
  if (patched.length) {
    out.firstPatchAnswered = patched[0]!;
    out.lastPatchAnswered = patched[patched.length - 1]!;
    out.patchesLogged = patched.length;
  }
  if (status.length) {
    out.firstStatusWrite = status[0]!;
    out.statusWrites = status.length;
  }
  out.firstPodSeen = watch.firstOkAt - editAt;
  out.lastPodSeen = watch.lastOkAt - editAt;
  return out;
}

interface SizeResult {
  n: number;
  /** Per configuration: the best of its rounds for each, and every round's seconds. */
  configs: {
    limits: Limits;
    controller: Phase;
    plain: Phase;
    raw: Phase;
    samples: { controller: number[]; plain: number[]; raw: number[] };
  }[];
}

const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

const fmtS = (s: number): string => `${s.toFixed(1)} s`;

async function startConfigured(
  cp: ControlPlane,
  addon: Awaited<ReturnType<typeof installAddon>>,
  limits: Limits,
  prof: string | undefined,
): Promise<WebhookProcess> {
  const args = [
    ...['--lease-duration', '4s', '--renew-deadline', '3s', '--retry-period', '500ms', '--trusted-user', addon.user],
    ...['--patch-qps', String(limits.qps), '--patch-burst', String(limits.burst), '--patch-concurrency', String(limits.concurrency)],
    // OVRT_BENCH_CONTROLLER_MARKS=1: debug logs, read back as the phases of each edit (marksOf).
    ...(process.env.OVRT_BENCH_CONTROLLER_MARKS === '1' ? ['--log-level', 'debug'] : []),
  ];
  // Node flags, not NODE_OPTIONS: startWebhook runs the process without the caller's NODE_OPTIONS.
  const nodeArgs = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : undefined;
  // `base:` configurations run an earlier build of this project (its CLI and its deploy/webhook-config.yaml).
  const cli = limits.base ? join(limits.base, 'dist', 'bin', 'ovnkube-route.js') : undefined;
  const wh = await startWebhook({
    kubeconfig: addon.kubeconfig,
    certDir: addon.certDir,
    args,
    ...(nodeArgs ? { nodeArgs } : {}),
    ...(cli ? { cli } : {}),
  });
  await registerWebhook(cp.kc, wh.port, addon.certDir, limits.base);
  return wh;
}

async function measureSize(n: number, configs: Limits[], reps: number, binDir: string, prof: string | undefined): Promise<SizeResult> {
  const log = (s: string): void => console.error(`[controller bench N=${n}] ${s}`);
  const { t, cleanup } = fakeTest();
  const cp = await startControlPlane({ binDir });
  t.teardown(() => cp.stop());
  const serverCpu = () => ({ apiserver: cpuSeconds(cp.pids.apiserver), etcd: cpuSeconds(cp.pids.etcd) });
  const apf = async (): Promise<{ rejected: number; waitSum: number; waitCount: number }> => {
    const text = String((await kubeRequest(cp.kc, 'GET', '/metrics', { headers: { Accept: 'text/plain' } })).body);
    const low = { priority_level: 'workload-low' };
    return {
      rejected: metricSum(text, 'apiserver_flowcontrol_rejected_requests_total'),
      waitSum: metricSum(text, 'apiserver_flowcontrol_request_wait_duration_seconds_sum', low),
      waitCount: metricSum(text, 'apiserver_flowcontrol_request_wait_duration_seconds_count', low),
    };
  };
  const apfDelta = (a: Awaited<ReturnType<typeof apf>>, b: Awaited<ReturnType<typeof apf>>) => ({
    apfRejected: b.rejected - a.rejected,
    apfWaitMeanMs: b.waitCount > a.waitCount ? Number((((b.waitSum - a.waitSum) / (b.waitCount - a.waitCount)) * 1000).toFixed(2)) : 0,
  });
  const watch = new PodWatch();
  t.teardown(() => watch.stop());
  let wh: WebhookProcess | undefined;
  t.teardown(() => wh?.stop());
  try {
    const addon = await installAddon(t, cp);
    const routesTo = planRoutesTo(addon.keys);
    let edit = 0;
    const cidr = (k: number): string => `172.17.${k}.0/24`;
    const spec = (k: number) => ({ include: [{ namespaces: [NS] }], route: [{ dst: cidr(k), dev: 'eth1' }] });
    await createNamespace(cp.kc, NS);
    await applyRoute(cp.kc, ROUTE, spec(edit));
    wh = await startConfigured(cp, addon, configs[0]!, prof);
    await until(
      'the webhook stamps pods',
      async () => {
        const res = await kubeRequest(cp.kc, 'POST', `/api/v1/namespaces/${NS}/pods`, {
          body: { metadata: { name: 'probe' }, spec: { containers: [{ name: 'c', image: 'registry.invalid/none:1' }] } },
          query: { dryRun: 'All' },
        });
        return routesTo(res.body?.metadata?.annotations?.[PLAN_ANNOTATION], cidr(0));
      },
      60_000,
    );
    const started = Date.now();
    const names = Array.from({ length: n }, (_, i) => `p-${String(i).padStart(5, '0')}`);
    await pool(names, 8, async (name) => {
      expectStatus(
        await kubeRequest(cp.kc, 'POST', `/api/v1/namespaces/${NS}/pods`, {
          body: { metadata: { name, labels: { app: 'bench' } }, spec: { containers: [{ name: 'c', image: 'registry.invalid/none:1' }] } },
        }),
        [201],
        `create pod ${name}`,
      );
    });
    log(`${n} pods created in ${fmtS((Date.now() - started) / 1000)}`);
    await watch.start(cp.kc);
    await watch.waitFor(n, (p) => routesTo(p.plan, cidr(0)), 'every pod stamped at creation', 120_000);

    const planLength = (): number => [...watch.pods.values()][0]!.plan!.length;
    let payloadRound = 0;
    /** A plain or raw loop: patch every pod's payload annotation, timed until the watch shows them all. */
    const podsFile = join(addon.certDir, 'bench-pods.json');
    const loop = async (concurrency: number, bucket: { qps: number; burst: number } | undefined): Promise<Phase> => {
      const value = `${++payloadRound}-`.padEnd(planLength() + 8, 'x');
      writeFileSync(podsFile, JSON.stringify([...watch.pods].map(([name, p]) => ({ name, uid: p.uid }))));
      // In a process of its own, as the controller is (this one is busy with the watch).
      const child = spawn(
        process.execPath,
        [fileURLToPath(import.meta.url), '--loop', JSON.stringify({ kubeconfig: addon.kubeconfig, podsFile, concurrency, bucket, value })],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      const exited = once(child, 'exit').then(([code]) => {
        if (code !== 0) throw new Error(`the loop process exited with ${String(code)}`);
      });
      let out = '';
      child.stdout!.setEncoding('utf8');
      const ready = new Promise<void>((resolve) =>
        child.stdout!.on('data', (d: string) => {
          out += d;
          if (out.includes('ready\n')) resolve();
        }),
      );
      await Promise.race([ready, exited]);
      const load = loadavg()[0]!;
      const apf0 = await apf();
      const t0 = performance.now();
      const server0 = serverCpu();
      const done = watch.waitFor(n, (p) => p.payload === value, 'loop', 600_000);
      child.stdin!.end('go\n');
      await Promise.race([done, exited.then(() => done)]);
      const seconds = (performance.now() - t0) / 1000;
      const server1 = serverCpu();
      await exited;
      const apf1 = await apf();
      // The loop process's own CPU from 'go' to its last answer (its last line).
      const cpu = (JSON.parse(out.trim().split('\n').pop()!) as { cpuSeconds: number }).cpuSeconds;
      return {
        seconds,
        cpuSeconds: cpu,
        apiserverCpuSeconds: server1.apiserver - server0.apiserver,
        etcdCpuSeconds: server1.etcd - server0.etcd,
        ...apfDelta(apf0, apf1),
        loadAverage: load,
      };
    };
    const settle = async (w: WebhookProcess): Promise<void> => {
      // Settled: this process leads, has reconciled every pod once since it started, and its queue is empty.
      await until(
        'the controller settles',
        async () => {
          const body = (await w.get('/metrics')).body;
          return (
            metricSum(body, 'ovnkube_route_controller_leader') === 1 &&
            metricSum(body, 'ovnkube_route_controller_reconcile_duration_seconds_count') >= n &&
            metricSum(body, 'ovnkube_route_controller_queue_depth') === 0
          );
        },
        300_000,
        250,
      );
    };

    const result: SizeResult = { n, configs: [] };
    const phases: { pid: number; config: string; n: number; fromUs: number; toUs: number }[] = [];
    if (prof) t.teardown(() => writeFileSync(join(prof, `phases-${n}.json`), JSON.stringify(phases)));
    for (const [ci, limits] of configs.entries()) {
      if (ci > 0) {
        await wh.stop();
        wh = await startConfigured(cp, addon, limits, prof);
      }
      await settle(wh);
      let controller: Phase = { seconds: Infinity };
      let plain: Phase = { seconds: Infinity };
      let raw: Phase = { seconds: Infinity };
      const samples = { controller: [] as number[], plain: [] as number[], raw: [] as number[] };
      const editStep = async (): Promise<void> => {
        const w = wh!;
        const before = await scrape(w);
        const apf0 = await apf();
        const server0 = serverCpu();
        const k = ++edit;
        const logsFrom = w.logs.length;
        const editAt = Date.now();
        const load = loadavg()[0]!;
        const t0 = performance.now();
        await applyRoute(cp.kc, ROUTE, spec(k));
        const editAnswered = Date.now() - editAt;
        await watch.waitFor(n, (p) => routesTo(p.plan, cidr(k)), `Route edit ${k} reaches every pod`, 900_000);
        const seconds = (performance.now() - t0) / 1000;
        // The phase on the monotonic clock the CPU profile's timestamps use (µs), to cut it out.
        if (prof) phases.push({ pid: w.child.pid!, config: limits.name, n, fromUs: monoUs() - seconds * 1e6, toUs: monoUs() });
        const server1 = serverCpu();
        const after = await scrape(w);
        const apf1 = await apf();
        const admissions = after.admissions - before.admissions;
        const reconciles = after.reconciles - before.reconciles;
        const c: Phase = {
          seconds,
          admissions,
          admissionMeanMs: admissions ? ((after.admissionSeconds - before.admissionSeconds) / admissions) * 1000 : 0,
          reconciles,
          reconcileMeanMs: reconciles ? ((after.reconcileSeconds - before.reconcileSeconds) / reconciles) * 1000 : 0,
          patched: after.patched - before.patched,
          patchFailures: after.patchFailures - before.patchFailures,
          cpuSeconds: after.cpu - before.cpu,
          lagP99Ms: after.lagP99 * 1000,
          apiserverCpuSeconds: server1.apiserver - server0.apiserver,
          etcdCpuSeconds: server1.etcd - server0.etcd,
          ...apfDelta(apf0, apf1),
          loadAverage: load,
        };
        if (process.env.OVRT_BENCH_CONTROLLER_MARKS === '1') c.marks = { editAnswered, ...marksOf(w.logs.slice(logsFrom), editAt, watch) };
        log(`${limits.name}: controller ${fmtS(seconds)} ${JSON.stringify(c)}`);
        samples.controller.push(Number(seconds.toFixed(2)));
        if (seconds < controller.seconds) controller = c;
        // Let the controller finish (status writes) before a loop runs.
        await settle(w);
      };
      const plainStep = async (): Promise<void> => {
        const p = await loop(limits.concurrency, { qps: limits.qps, burst: limits.burst });
        log(`${limits.name}: plain loop ${fmtS(p.seconds)} ${JSON.stringify(p)}`);
        samples.plain.push(Number(p.seconds.toFixed(2)));
        if (p.seconds < plain.seconds) plain = p;
      };
      // The raw loop in every round, beside the others (the machine's load drifts), and
      // compared per configuration: as many samples as the controller's.
      const rawStep = async (): Promise<void> => {
        const w = await loop(RAW_CONCURRENCY, undefined);
        log(`raw loop ${fmtS(w.seconds)} ${JSON.stringify(w)}`);
        samples.raw.push(Number(w.seconds.toFixed(2)));
        if (w.seconds < raw.seconds) raw = w;
      };
      for (let r = 0; r < reps; r++) {
        // Each round in another order (edit, plain, raw; plain, raw, edit; raw, edit, plain):
        // whatever the step before leaves behind (the API server's garbage, etcd's compaction
        // of the versions just written) falls on each of the three in turn.
        const steps = [editStep, plainStep, rawStep];
        for (let i = 0; i < 3; i++) await steps[(i + r) % 3]!();
      }
      result.configs.push({ limits, controller, plain, raw, samples });
    }
    return result;
  } finally {
    await cleanup();
  }
}

function rowsOf(results: SizeResult[]): { rows: BenchRow[]; json: Record<string, unknown>[] } {
  const rows: BenchRow[] = [];
  const json: Record<string, unknown>[] = [];
  for (const r of results) {
    for (const c of r.configs) {
      const l = c.limits;
      const rawName = `raw loop (concurrency ${RAW_CONCURRENCY}, no token bucket), same rounds: ${fmtS(c.raw.seconds)}`;
      const plainName = `plain loop (concurrency ${l.concurrency}, token bucket ${l.qps} qps / burst ${l.burst}), same rounds: ${fmtS(c.plain.seconds)}`;
      const bench = `controller: one Route edit reaching ${r.n} pods, ${l.name}`;
      const detail = `${fmtS(c.controller.seconds)} (${(r.n / c.controller.seconds).toFixed(0)} pods/s; own admissions ${c.controller.admissions}, mean reconcile ${c.controller.reconcileMeanMs?.toFixed(1)} ms, lag p99 ${c.controller.lagP99Ms?.toFixed(0)} ms)`;
      rows.push({ bench, value: detail, baseline: plainName, ratio: `${(c.controller.seconds / c.plain.seconds).toFixed(2)}x` });
      rows.push({ bench, value: detail, baseline: rawName, ratio: `${(c.controller.seconds / c.raw.seconds).toFixed(2)}x` });
      for (const [base, name, secs] of [
        ['plain', plainName, c.plain.seconds],
        ['raw', rawName, c.raw.seconds],
      ] as const) {
        json.push({
          bench,
          n: r.n,
          flags: { patchQps: l.qps, patchBurst: l.burst, patchConcurrency: l.concurrency },
          unit: 's',
          value: Number(c.controller.seconds.toFixed(2)),
          ratio: Number((c.controller.seconds / secs).toFixed(2)),
          baseline: name,
          baselineKind: base,
          baselineValue: Number(secs.toFixed(2)),
          controller: c.controller,
          baselinePhase: base === 'plain' ? c.plain : c.raw,
          samples: c.samples,
          // The medians of the rounds too: with the machine's load drifting, the best of each
          // series may come from different moments.
          medianRatio: Number((median(c.samples.controller) / median(base === 'plain' ? c.samples.plain : c.samples.raw)).toFixed(2)),
        });
      }
    }
  }
  return { rows, json };
}

/** Run the controller benchmarks; `{skipped}` when the control plane's binaries are not built. */
export async function run(): Promise<BenchRow[] | { skipped: string }> {
  const bins = await findBinaries({ allowBuild: false });
  if (!bins.dir)
    return { skipped: `controller on the real API server: binaries not built (${bins.reason}); run npm test -- test/e2e once` };
  const sizes = (process.env.OVRT_BENCH_CONTROLLER_SIZES ?? '200,1000,3000').split(',').map(Number);
  if (sizes.some((s) => !Number.isInteger(s) || s < 1))
    throw new Error(
      `OVRT_BENCH_CONTROLLER_SIZES: expected pod counts such as 200,1000,3000, got "${process.env.OVRT_BENCH_CONTROLLER_SIZES}"`,
    );
  const configs = parseConfigs(process.env.OVRT_BENCH_CONTROLLER_CONFIGS ?? 'before,defaults');
  const prof = process.env.OVRT_BENCH_CONTROLLER_PROF;
  if (prof) mkdirSync(prof, { recursive: true });
  const results: SizeResult[] = [];
  for (const n of sizes) {
    const reps = Number(process.env.OVRT_BENCH_CONTROLLER_REPS ?? (n >= 3000 ? 1 : 2));
    results.push(await measureSize(n, configs, reps, bins.dir, prof));
  }
  const { rows, json } = rowsOf(results);
  const resDir = join(here, '..', '..', '..', 'test', 'bench', 'results');
  mkdirSync(resDir, { recursive: true });
  const out = join(resDir, process.env.OVRT_BENCH_CONTROLLER_OUT ?? 'controller.json');
  // OVRT_BENCH_CONTROLLER_APPEND=1: add this run's rows to the file's (each row names its run's date).
  const date = new Date().toISOString();
  const dated = json.map((r) => ({ ...r, date }));
  const earlier =
    process.env.OVRT_BENCH_CONTROLLER_APPEND === '1' && existsSync(out)
      ? (JSON.parse(readFileSync(out, 'utf8')) as { rows: Record<string, unknown>[] }).rows.map((r) => ({ date: undefined, ...r }))
      : [];
  writeFileSync(out, JSON.stringify({ date, node: process.version, sizes, rows: [...earlier, ...dated] }, null, 2) + '\n');
  return rows;
}

/** `--loop ARGS`: one plain or raw loop, started by a line on stdin (see measureSize). */
async function loopProcess(spec: string): Promise<void> {
  const a = JSON.parse(spec) as {
    kubeconfig: string;
    podsFile: string;
    concurrency: number;
    bucket?: { qps: number; burst: number };
    value: string;
  };
  const kc = new KubeConfig();
  kc.loadFromFile(a.kubeconfig);
  shareConnections(kc);
  const pods = JSON.parse(readFileSync(a.podsFile, 'utf8')) as { name: string; uid: string }[];
  const bucket = a.bucket ? new TokenBucket(a.bucket.qps, a.bucket.burst) : undefined;
  process.stdout.write('ready\n');
  await once(process.stdin, 'data');
  const cpu0 = process.cpuUsage();
  await pool(pods, a.concurrency, async (p) => {
    await bucket?.take();
    await patchPod(kc, p.name, p.uid, a.value);
  });
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(`${JSON.stringify({ cpuSeconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(2)) })}\n`);
}

// `node dist/test/bench/controller.bench.js`: this bench alone (and the loops' processes).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv[2] === '--loop') {
    await loopProcess(process.argv[3]!);
    process.exit(0);
  }
  try {
    console.log(JSON.stringify(await run(), null, 2));
  } catch (e) {
    console.error(`controller bench failed: ${(e as Error).stack ?? String(e)}`);
    process.exitCode = 1;
  }
}
