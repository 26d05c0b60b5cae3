/**
 * The real `ovnkube-route agent` binary against a real kube-apiserver, with simulated
 * sandboxes (a real netns wired like the mission's pod, its CNI cache file, and a pod
 * object with a signed plan, as the webhook would write it). For the fault tests of
 * test/faults/ and the soak (test/bench/soak.ts). Not a test file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { nodeCommand } from '../util/node-child.js';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { compareCIDR, parseCIDR } from '../../core/ip.js';
import { decodeInjectorStatus, type InjectorStatus } from '../../core/injector-status.js';
import { encodePlan, type PlanKey } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { kubeRequest as kubeRequestOnce, type KubeResponse } from '../cluster/k8s.js';
import { cliPath } from '../util/fixtures.js';
import { freePort, httpGet, metricSum } from '../util/http.js';
import { makePod, routeLines, type TestNetns } from '../util/netns.js';
import { testKey, until, writeCacheFile } from '../agent/rig.js';

/**
 * kubeRequest, retried (up to 5 times) when the connection itself fails: on a loaded
 * machine the API server now and then resets a TLS handshake. The test's own requests are
 * not what is under test; an HTTP answer is returned as it is.
 */
export async function kubeRequest(...args: Parameters<typeof kubeRequestOnce>): Promise<KubeResponse> {
  for (let i = 1; ; i++) {
    try {
      return await kubeRequestOnce(...args);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (i >= 5 || !['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT'].includes(code ?? '')) throw e;
      await new Promise((r) => setTimeout(r, 200 * i));
    }
  }
}

/** What makeNetns needs of a tap Test: somewhere to register cleanups (the soak has no tap). */
export interface Teardowns {
  teardown(fn: () => unknown): void;
}

/** A teardown list for code outside tap; run() calls them in reverse order. */
export class Cleanups implements Teardowns {
  private readonly fns: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    while (this.fns.length) {
      try {
        await this.fns.pop()!();
      } catch {
        /* best effort */
      }
    }
  }
}

/** A namespace, a Node object, the agent's folders and a plan key. */
export interface AgentEnv {
  kc: KubeConfig;
  /** https://127.0.0.1:port of the API server (or a front before it). */
  server: string;
  caPem: string;
  /** Admin kubeconfig file. */
  kubeconfig: string;
  dir: string;
  cacheDir: string;
  stateDir: string;
  key: PlanKey;
  keyFile: string;
  namespace: string;
  node: string;
}

/** Admin kubeconfig of `kc`, pointed at `server` (a front before the API server). */
export function kubeconfigFor(kc: KubeConfig, server: string, file: string): string {
  const cfg = JSON.parse(kc.exportConfig()) as { clusters: { cluster: { server: string } }[] };
  for (const c of cfg.clusters) c.cluster.server = server;
  writeFileSync(file, stringify(cfg), { mode: 0o600 });
  return file;
}

export async function agentEnv(
  t: Teardowns,
  cp: { kc: KubeConfig; server: string; caPem: string },
  namespace: string,
  node: string,
): Promise<AgentEnv> {
  const dir = mkdtempSync(join(tmpdir(), `ovrt-${namespace}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cacheDir = join(dir, 'cni');
  const stateDir = join(dir, 'state');
  mkdirSync(cacheDir);
  mkdirSync(stateDir);
  for (const [path, body] of [
    ['/api/v1/namespaces', { metadata: { name: namespace } }],
    ['/api/v1/nodes', { metadata: { name: node } }],
  ] as const) {
    const res = await kubeRequest(cp.kc, 'POST', path, { body });
    if (res.status !== 201 && res.status !== 409) throw new Error(`POST ${path}: HTTP ${res.status} ${res.body?.message}`);
  }
  const key = testKey();
  const keyFile = join(dir, 'plan.key');
  writeFileSync(keyFile, key.secret.toString('base64') + '\n', { mode: 0o600 });
  return {
    kc: cp.kc,
    server: cp.server,
    caPem: cp.caPem,
    kubeconfig: kubeconfigFor(cp.kc, cp.server, join(dir, 'kubeconfig')),
    dir,
    cacheDir,
    stateDir,
    key,
    keyFile,
    namespace,
    node,
  };
}

/** One agent process. */
export class AgentProc {
  log = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stderr!.on('data', (d: Buffer) => {
      this.log += d.toString();
      if (this.log.length > 4 << 20) this.log = this.log.slice(-(2 << 20));
    });
    this.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  }

  static async start(
    env: AgentEnv,
    o: { kubeconfig?: string; args?: string[]; ready?: boolean; nodeArgs?: string[] } = {},
  ): Promise<AgentProc> {
    const port = await freePort();
    // Without the test runner's loader (node-child.ts): the agent as the DaemonSet runs it
    // (with it, source maps put 180 MiB in the agent's heap and 350 MiB in its RSS).
    const { NODE_OPTIONS: _omit, ...parentEnv } = process.env;
    const child = spawn(
      ...nodeCommand([
        ...(o.nodeArgs ?? []),
        cliPath,
        'agent',
        '--node-name',
        env.node,
        '--plan-key',
        env.keyFile,
        '--cni-cache-dir',
        env.cacheDir,
        '--state-dir',
        env.stateDir,
        '--kubeconfig',
        o.kubeconfig ?? env.kubeconfig,
        '--metrics-addr',
        `127.0.0.1:${port}`,
        ...(o.args ?? []),
      ]),
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...parentEnv, NODE_NAME: '' } },
    );
    const a = new AgentProc(child, port);
    if (o.ready !== false) {
      try {
        await until('the agent is ready', async () => (await a.get('/readyz')).status === 200, 90_000);
      } catch (e) {
        child.kill('SIGKILL');
        throw new Error(`${(e as Error).message}; the agent's stderr ends with: ${a.log.slice(-2000) || '(nothing)'}`, { cause: e });
      }
    }
    return a;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    try {
      return await httpGet(this.port, path);
    } catch (e) {
      return { status: 0, body: (e as Error).message };
    }
  }

  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricSum((await this.get('/metrics')).body, name, labels);
  }

  /** Log lines (parsed JSON) whose msg is `msg`. */
  lines(msg: string): Record<string, unknown>[] {
    return this.log
      .split('\n')
      .filter((l) => l.includes(`"${msg}"`))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      })
      .filter((o) => o.msg === msg);
  }

  /** Open fds of the agent process. */
  fds(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /** Resident set of the agent process, KiB. */
  rssKb(): number {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }
}

/** A simulated sandbox: the pod object (with its signed plan), its netns, its cache file. */
export interface Sandbox {
  name: string;
  pod: Pod;
  ns: TestNetns;
  node: TestNetns;
  plan: Plan;
  cacheFile: string;
}

export const podPath = (env: AgentEnv, name: string): string => `/api/v1/namespaces/${env.namespace}/pods/${name}`;

/** Create the pod in the API (signed plan, bound to the agent's node), then its netns and cache file. */
export async function sandbox(t: Teardowns, env: AgentEnv, name: string, plan: Plan, o: { eth1?: boolean } = {}): Promise<Sandbox> {
  const res = await kubeRequest(env.kc, 'POST', `/api/v1/namespaces/${env.namespace}/pods`, {
    body: {
      metadata: { name, annotations: { [PLAN_ANNOTATION]: encodePlan(plan, { namespace: env.namespace, key: env.key }) } },
      spec: { nodeName: env.node, containers: [{ name: 'c', image: 'registry.invalid/none' }] },
    },
  });
  if (res.status !== 201) throw new Error(`create pod ${name}: HTTP ${res.status} ${res.body?.message}`);
  const pod = res.body as Pod;
  const { pod: ns, node } = makePod(t as never, { eth1: o.eth1 ?? true });
  const cacheFile = writeCacheFile(env.cacheDir, pod, ns.path);
  return { name, pod, ns, node, plan, cacheFile };
}

/** Replace a pod's plan (a Route edit, as the controller writes it). */
export async function setPlan(env: AgentEnv, s: Sandbox, plan: Plan): Promise<void> {
  const res = await kubeRequest(env.kc, 'PATCH', podPath(env, s.name), {
    body: { metadata: { annotations: { [PLAN_ANNOTATION]: encodePlan(plan, { namespace: env.namespace, key: env.key }) } } },
    contentType: 'application/merge-patch+json',
  });
  if (res.status !== 200) throw new Error(`patch pod ${s.name}: HTTP ${res.status} ${res.body?.message}`);
  s.plan = plan;
}

/** Delete the pod (grace 0), its cache file and its netns, as the runtime does. */
export async function removeSandbox(env: AgentEnv, s: Sandbox): Promise<void> {
  const res = await kubeRequest(env.kc, 'DELETE', podPath(env, s.name), { query: { gracePeriodSeconds: '0' } });
  if (res.status !== 200 && res.status !== 404) throw new Error(`delete pod ${s.name}: HTTP ${res.status} ${res.body?.message}`);
  rmSync(s.cacheFile, { force: true });
  s.ns.del();
  s.node.del();
}

/** The pod's status annotation as the agent last reported it. */
export async function statusOf(env: AgentEnv, name: string): Promise<InjectorStatus | undefined> {
  const res = await kubeRequest(env.kc, 'GET', podPath(env, name));
  return decodeInjectorStatus((res.body as Pod)?.metadata?.annotations?.[STATUS_ANNOTATION]);
}

/** The lines routeLines() prints for the routes of `plan` (ours, proto 111; its default route too), sorted likewise. */
export function wantLines(plan: Plan): string[] {
  return [...plan.routes, ...(plan.default ? [{ dst: 'default', ...plan.default }] : [])]
    .map((r) => `${r.dst.replace(/\/32$/, '')}${r.via ? ` via ${r.via}` : ''} dev ${r.dev} proto 111`)
    .sort();
}

/** Our routes in the netns (proto 111), as routeLines() prints them. */
export const ownRoutes = (ns: TestNetns): string[] => routeLines(ns).filter((l) => l.endsWith(' proto 111'));

/** True when the netns holds exactly the plan's routes, and no destination twice. */
export function routedExactly(s: Sandbox): boolean {
  const all = routeLines(s.ns);
  const dsts = all.map((l) => l.split(' ')[0]);
  return new Set(dsts).size === dsts.length && JSON.stringify(ownRoutes(s.ns)) === JSON.stringify(wantLines(s.plan));
}

/**
 * A plan of `n` host routes on both devices (and a gateway route), distinct per `seed`:
 * 10.<200+seed%50>.<i/250>.<i%250>/32 alternately on eth0 and eth1.
 */
export function bigPlan(n: number, seed: number): Plan {
  const routes: Plan['routes'] = [{ dst: `172.${16 + (seed % 16)}.0.0/16`, dev: 'eth1', via: '10.124.2.1' }];
  for (let i = 0; routes.length < n; i++)
    routes.push({ dst: `10.${200 + (seed % 50)}.${Math.floor(i / 250)}.${i % 250}/32`, dev: i % 2 ? 'eth1' : 'eth0' });
  const key = (dst: string) => {
    const c = parseCIDR(dst);
    if (!c.ok) throw new Error(c.error);
    return c.value;
  };
  routes.sort((a, b) => compareCIDR(key(a.dst), key(b.dst)));
  return { v: 1, routes };
}

/** Least-squares slope of y over x (per unit of x). */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
