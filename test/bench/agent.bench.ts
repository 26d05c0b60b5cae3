/**
 * Node agent benchmarks (root only): CPU per pod for
 *  - agent start: the agent starts on a node with N pods (each a netns with eth0/eth1, its CNI
 *    cache file written before), and writes a 20-route plan into each;
 *  - a node-wide one-CIDR plan change: every pod's plan gains one CIDR (21 routes; from the
 *    second change on, in place of the previous one), the agent writes the difference,
 * at N = 50, 200, 500 pods (the agent keeps one event socket per pod: the fd table grows with N),
 * each against baselines measured in the same run, on a second set of N netns of the same
 * shape that the agent does not keep, while the agent's event sockets are open:
 *  - the bare netlink floor: a bare RtnlClient per pod (open, make the same writes, close), our
 *    own transport (a socket of the native addon, batched synchronous exchanges);
 *  - a bare client of the `netlink` package (its socket, the same writes, close): the floor the
 *    issue's goals were set against, and the agent's transport before RtnlClient got its own;
 *  - `ip -n NS -batch FILE` per pod (CPU of the ip processes plus spawning them).
 * CPU is process.cpuUsage() (user + system, the kernel's netlink work included) plus, for ip,
 * the reaped children's time (/proc/self/stat cutime + cstime). The agent runs in this process
 * with the agent test rig's in-process stand-in for the API server (MemoryApi): the stand-in's
 * own work (storing, cloning and patching pod objects: kube-apiserver's, in a cluster) is
 * measured around each of its calls and subtracted (ApiMeter), and shown in each row. The rig
 * hands the agent objects directly, so a real agent also pays JSON and HTTPS for its watch
 * events and status patches, which no figure here includes. The first change after the start
 * is measured once and reported apart (no goal): it pays the JIT's compiles of the change path
 * (on V8's helper threads, whose CPU is the process's), a cost of the process, not of a pod,
 * made once in an agent's life. Then ceil(WARM_POD_CHANGES / N) untimed changes (at N=50 the
 * path is still being optimised 30 changes in), then 24 measured rounds (best kept), the
 * agent's and the two bare clients' alike, interleaved: round k measures each bare client's
 * change, then the agent's, so a burst of load elsewhere on the machine falls on both sides of
 * a ratio. Starts are measured the same way, 3 rounds of each floor's start then a new agent's
 * on the same pods (routes flushed between), best kept, the first round also reported apart;
 * ip's once. Exported as run() for test/bench/run.ts; results also go to
 * test/bench/results/agent.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from 'node:inspector/promises';
import type { Test } from 'tap';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { encodePlan, planHash, type PlanKey } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { RtnlClient } from '../../injector/kernel/netlink.js';
import { routeKeyToMessage, routeWriteToMessage, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE } from '../../injector/kernel/netlink-codec.js';
import { createRtNetlink, FlagsNew } from '../../injector/kernel/netlink-lite.js';
import { withNetns } from '../../injector/kernel/netns.js';
import { RTPROT_OVNKUBE_ROUTE } from '../../injector/routes/engine.js';
import { makePodNetnsBatch } from '../agent/batch-netns.js';
import { makePodObject, startRig, testKey, writeCacheFile, type MemoryApi } from '../agent/rig.js';
import type { BenchRow } from './measure.js';

const here = dirname(fileURLToPath(import.meta.url));
const SIZES = [50, 200, 500];
const ROUTES = 20;
const CHANGES = 24;
/** Agent starts (and floor starts), interleaved: best kept. */
const STARTS = 3;
/** ip -batch changes (not a goal: its figure moves little, and 24 rounds of N processes take long). */
const IP_CHANGES = 4;
/** Untimed plan changes before the measured ones, in pod changes (ceil(WARM_POD_CHANGES / N) node-wide changes). */
const WARM_POD_CHANGES = 2000;

/** A fake tap Test: collects teardowns, run in reverse by `cleanup`. */
function fakeTest(): { t: Test; cleanup: () => void } {
  const fns: (() => unknown)[] = [];
  const t = {
    teardown: (fn: () => unknown) => {
      fns.push(fn);
    },
  } as unknown as Test;
  return {
    t,
    cleanup: () => {
      for (const f of fns.reverse()) {
        try {
          f();
        } catch {
          /* best effort */
        }
      }
    },
  };
}

/** The plan: ROUTES CIDRs (2 of 3 link routes on eth1, the rest via the OVN gateway), plus `extra` change CIDRs. */
function planWith(extra: number): Plan {
  const routes = Array.from({ length: ROUTES }, (_, i) =>
    i % 3 === 2 ? { dst: `172.20.${i}.0/24`, dev: 'eth1', via: '10.124.2.1' } : { dst: `172.20.${i}.0/24`, dev: 'eth1' },
  );
  if (extra) routes.push({ dst: `172.21.${extra}.0/24`, dev: 'eth1' });
  return { v: 1, routes: routes.sort((a, b) => a.dst.localeCompare(b.dst, 'en', { numeric: true })) };
}

/**
 * CPU of this process (µs), and of its reaped children (µs, 10 ms resolution). The read of
 * /proc/self/stat (for the children) is kept out of a measured span: at its start it comes
 * before the process's own reading, at its end after it.
 */
function cpuNow(at: 'start' | 'end'): { self: number; children: number } {
  const children = (): number => {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const hz = 100; // USER_HZ
    return ((Number(f[13]) + Number(f[14])) * 1e6) / hz;
  };
  const before = at === 'start' ? children() : 0;
  const u = process.cpuUsage();
  return { self: u.user + u.system, children: at === 'start' ? before : children() };
}

/**
 * The CPU of the bench's in-process stand-in for the API server (MemoryApi storing, cloning and
 * patching pod objects, and the bench watching them), to be subtracted from the agent's: in a
 * cluster that work is kube-apiserver's, in another process. Time is counted while an `api`
 * section is innermost; deliveries to the agent inside one (`agent` sections) are the agent's.
 * It is the process's CPU while a section runs (getrusage RUSAGE_SELF, exact to the
 * microsecond), so the garbage collector's helper threads working meanwhile count as the
 * stand-in's too. The main thread's own figure (RUSAGE_THREAD) would leave them out, but Linux
 * updates a running thread's figure only at scheduler ticks, so it reads 0 for most sections.
 * Each switch between the sides costs one getrusage call (about 1 µs), shared between them.
 */
class ApiMeter {
  us = 0;
  private readonly stack: ('api' | 'agent')[] = ['agent'];
  private last = process.cpuUsage();
  private mark(): void {
    const now = process.cpuUsage();
    if (this.stack.at(-1) === 'api') this.us += now.user - this.last.user + (now.system - this.last.system);
    this.last = now;
  }
  private run<T>(mode: 'api' | 'agent', fn: () => T): T {
    if (this.stack.at(-1) === mode) return fn(); // no switch, no reading
    this.mark();
    this.stack.push(mode);
    try {
      return fn();
    } finally {
      this.mark();
      this.stack.pop();
    }
  }
  api<T>(fn: () => T): T {
    return this.run('api', fn);
  }
  agent<T>(fn: () => T): T {
    return this.run('agent', fn);
  }
}

/** Route the rig's API stand-in through `m`: its own work is counted as the API's, its deliveries as the agent's. */
function meterApi(api: MemoryApi, m: ApiMeter): void {
  const put = api.put.bind(api);
  const patchA = api.patchPodAnnotations.bind(api);
  const patchC = api.patchPodCondition.bind(api);
  const event = api.createEvent.bind(api);
  api.put = (p) => m.api(() => put(p));
  api.patchPodAnnotations = (id, a) => m.api(() => patchA(id, a));
  api.patchPodCondition = (id, c) => m.api(() => patchC(id, c));
  api.createEvent = (id, e) => m.api(() => event(id, e));
}

/** CPU of `fn` (as cpuOf), less the API stand-in's share measured by `m` meanwhile. */
async function agentCpuOf(m: ApiMeter, fn: () => Promise<unknown>): Promise<{ agent: number; api: number }> {
  const before = m.us;
  const total = await cpuOf(fn);
  const api = m.us - before;
  return { agent: total - api, api };
}

async function cpuOf(fn: () => Promise<unknown> | unknown): Promise<number> {
  const a = cpuNow('start');
  await fn();
  const b = cpuNow('end');
  return b.self - a.self + (b.children - a.children);
}

/**
 * OVRT_BENCH_AGENT_PROF=DIR: a CPU profile of each measured agent phase (in-process
 * inspector), written as DIR/agent-<phase>-N<n>.cpuprofile; the figures then include the
 * profiler's overhead.
 */
async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (process.env.OVRT_BENCH_AGENT_MARKS) return marked(name, fn);
  const dir = process.env.OVRT_BENCH_AGENT_PROF;
  if (!dir) return fn();
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 100 }); // µs: the phases are short
  await s.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await s.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `agent-${name}.cpuprofile`), JSON.stringify(profile));
    s.disconnect();
  }
}

/**
 * OVRT_BENCH_AGENT_MARKS=1: each measured agent phase prints its start and end on stderr as
 * CLOCK_MONOTONIC seconds, for a system profile of the phase alone
 * (`perf record -k CLOCK_MONOTONIC ...`, then `perf report --time START,END`).
 */
async function marked<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const now = (): string => (Number(process.hrtime.bigint()) / 1e9).toFixed(6);
  const start = now();
  try {
    return await fn();
  } finally {
    process.stderr.write(`phase ${name} ${start},${now()}\n`);
  }
}

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

interface Row {
  n: number;
  what: string;
  /** The agent's CPU, less the API stand-in's (`apiUs`, subtracted). */
  agentUs: number;
  apiUs: number;
  /** The bare RtnlClient (our native transport). */
  floorUs: number;
  /** A bare client of the `netlink` package. */
  packageUs: number;
  /** (Not for the first start or the first change: ip's are measured apart, once for a start, 4 times for a change.) */
  ipBatchUs?: number;
  /** How the figure was taken. */
  measured: string;
}

/** Writes of a plan's routes (and a delete) through a bare client (the netlink floor): open, write, close. */
async function bareWrite(path: string, eth1: number, routes: Plan['routes'], del?: string): Promise<void> {
  const c = RtnlClient.open(path);
  try {
    await Promise.all([
      ...(del ? [c.deleteRoute({ dst: del })] : []),
      ...routes.map((r) =>
        c.addRoute(
          r.via
            ? { dst: r.dst, oif: eth1, via: r.via, scope: RT_SCOPE_UNIVERSE, protocol: RTPROT_OVNKUBE_ROUTE }
            : { dst: r.dst, oif: eth1, scope: RT_SCOPE_LINK, protocol: RTPROT_OVNKUBE_ROUTE },
        ),
      ),
    ]);
  } finally {
    c.close();
  }
}

/**
 * The same writes through a bare client of the `netlink` package (its own socket, opened in
 * the netns; open, write, close): the floor the agent's goals were set against, and the
 * agent's transport until RtnlClient got its own.
 */
async function bareWritePackage(path: string, eth1: number, routes: Plan['routes'], del?: string): Promise<void> {
  const sock = withNetns(path, () => createRtNetlink());
  try {
    await Promise.all([
      ...(del ? [sock.delRoute(routeKeyToMessage({ dst: del }).data, routeKeyToMessage({ dst: del }).attrs)] : []),
      ...routes.map((r) => {
        const { data, attrs } = routeWriteToMessage(
          r.via
            ? { dst: r.dst, oif: eth1, via: r.via, scope: RT_SCOPE_UNIVERSE, protocol: RTPROT_OVNKUBE_ROUTE }
            : { dst: r.dst, oif: eth1, scope: RT_SCOPE_LINK, protocol: RTPROT_OVNKUBE_ROUTE },
        );
        return sock.newRoute(data, attrs, { flags: FlagsNew.CREATE | FlagsNew.EXCL });
      }),
    ]);
  } finally {
    sock.socket.close();
  }
}

/** A copy of `pod` whose plan annotation is `plan` signed with `key` (as the webhook/controller would write it). */
function withPlan(pod: Pod, plan: Plan, key: PlanKey): Pod {
  const p = structuredClone(pod);
  p.metadata!.annotations = { ...p.metadata!.annotations, [PLAN_ANNOTATION]: encodePlan(plan, { namespace: p.metadata!.namespace!, key }) };
  return p;
}

/** JIT-warm the bare clients before the first baseline (each writes one route, then it is removed). */
async function warmup(path: string, eth1: number): Promise<void> {
  const one = [{ dst: '172.23.0.0/24', dev: 'eth1' }];
  for (let i = 0; i < 20; i++) {
    await bareWritePackage(path, eth1, one);
    await bareWrite(path, eth1, [], '172.23.0.0/24');
    await bareWrite(path, eth1, one);
    await bareWrite(path, eth1, [], '172.23.0.0/24');
  }
}

async function measureN(n: number, tmp: string, warmPodChanges = WARM_POD_CHANGES): Promise<Row[]> {
  const { t, cleanup } = fakeTest();
  try {
    // The agent's pods, and a second set of N netns of the same shape for the baselines: the
    // agent never keeps those, so the floors' plan changes can be measured between the
    // agent's (below), under the same load of the machine and with the agent's event
    // sockets open (the kernel offers every route write to each of them).
    const { paths, names: agentNames } = makePodNetnsBatch(t, n);
    const floorSet = makePodNetnsBatch(t, n, 'f');
    const fpaths = floorSet.paths;
    const names = floorSet.names;
    // eth1's ifindex per pod (the floor is given it; the agent looks it up itself).
    const eth1 = names.map((x) => (JSON.parse(ip('-n', x, '-j', 'link', 'show', 'eth1')) as { ifindex: number }[])[0]!.ifindex);
    const base = planWith(0).routes;
    const flush = (set: string[]): void => {
      for (const x of set) ip('-n', x, 'route', 'flush', 'proto', String(RTPROT_OVNKUBE_ROUTE));
    };
    const batchFile = (routes: Plan['routes'], name: string): string => {
      const f = join(tmp, name);
      writeFileSync(
        f,
        routes.map((r) => `route add ${r.dst}${r.via ? ` via ${r.via}` : ''} dev eth1 proto ${RTPROT_OVNKUBE_ROUTE}`).join('\n') + '\n',
      );
      return f;
    };
    const startFile = batchFile(base, 'start.batch');
    await warmup(fpaths[0]!, eth1[0]!);

    // Baselines: start (ROUTES writes per pod) through a bare client (ours, then the netlink
    // package's) and ip -batch; a change is the same writes as the
    // agent's: change k adds the k-th CIDR and (k > 1) deletes the one before it, each client
    // in a range of its own (both stay on top of the package client's start).
    const startOf = (write: typeof bareWrite): Promise<number> =>
      cpuOf(async () => {
        for (let i = 0; i < n; i++) await write(fpaths[i]!, eth1[i]!, base);
      });
    const changeOf = (write: typeof bareWrite, range: string, k: number): Promise<number> => {
      const add = [{ dst: `${range}.${k}.0/24`, dev: 'eth1' }];
      const del = k > 1 ? `${range}.${k - 1}.0/24` : undefined;
      return cpuOf(async () => {
        for (let i = 0; i < n; i++) await write(fpaths[i]!, eth1[i]!, add, del);
      });
    };
    // ip -batch first (not a goal; its figures move little): a start, then IP_CHANGES changes.
    const ipStart = await cpuOf(() => {
      for (const x of names) ip('-n', x, '-batch', startFile);
    });
    let ipChange = Infinity;
    for (let k = 1; k <= IP_CHANGES; k++) {
      const f = batchFile([{ dst: `172.22.${k}.0/24`, dev: 'eth1' }], `change-${k}.batch`);
      ipChange = Math.min(
        ipChange,
        await cpuOf(() => {
          for (const x of names) ip('-n', x, '-batch', f);
        }),
      );
    }
    flush(names);
    let floorChange = Infinity;
    let pkgChange = Infinity;

    // The agent: start with N pods, then CHANGES node-wide one-CIDR changes.
    let rig: Awaited<ReturnType<typeof startRig>> | undefined;
    // Which pods report which plan (hash), kept up to date from the API's own updates, so that
    // waiting costs nothing per poll (the harness's CPU is not the agent's).
    const reported = new Map<string, string>();
    let want = '';
    let wantRoutes = 0;
    let done = 0;
    let wake: (() => void) | null = null;
    const watch = (p: Pod): void => {
      const s = decodeInjectorStatus(p.metadata?.annotations?.[STATUS_ANNOTATION]);
      const uid = p.metadata!.uid!;
      const ok = s?.plan === want && s.applied === wantRoutes && s.skipped.length === 0;
      const was = reported.get(uid) === want;
      reported.set(uid, ok ? want : (s?.plan ?? ''));
      if (ok && !was) done++;
      if (!ok && was) done--;
      if (done === n) wake?.();
    };
    const allInPlace = (plan: Plan): { expect: () => void; wait: () => Promise<void> } => ({
      expect: () => {
        want = planHash(plan);
        wantRoutes = plan.routes.length;
        done = 0;
        reported.clear();
      },
      // (A ref'd timer keeps the loop alive: the rig's watchers are unref'd, as in the agent.)
      wait: () =>
        done === n
          ? Promise.resolve()
          : new Promise<void>((r) => {
              const keep = setInterval(() => {}, 1000);
              wake = () => {
                clearInterval(keep);
                wake = null;
                r();
              };
            }),
    });
    const plan0 = planWith(0);
    // Pod objects with their signed plans (the webhook's work) are made before measuring,
    // with the key the agent is then given.
    const key = testKey();
    const objs = paths.map((_, i) => withPlan(makePodObject({ name: `bench-${i}`, plan: plan0 }), plan0, key));
    // The agent starts on a node whose N sandboxes exist (as after an upgrade or a restart of
    // the DaemonSet): their CNI cache files, the runtime's work, are written before measuring.
    const cacheDir = mkdtempSync(join(tmpdir(), 'ovr-agent-bench-cni-'));
    t.teardown(() => rmSync(cacheDir, { recursive: true, force: true }));
    objs.forEach((o, i) => writeCacheFile(cacheDir, o, paths[i]!));
    const w0 = allInPlace(plan0);
    const meter = new ApiMeter();
    // The agent's start on the N pods: a new rig (a new agent, as a restarted DaemonSet pod is).
    const startAgent = (name: string): Promise<{ agent: number; api: number }> => {
      w0.expect();
      return profiled(name, () =>
        agentCpuOf(meter, async () => {
          rig = await startRig(t, { cacheDir, keys: [key], maxParallel: 4, keeper: { resyncMs: 0, debounceMs: 50 } });
          const api = rig.api;
          meterApi(api, meter);
          const deliver = api.onUpdate;
          // (Called by the stand-in's patches only, so `watch` runs in their `api` section.)
          api.onUpdate = (p) => {
            meter.agent(() => deliver(p));
            watch(p);
          };
          for (const o of objs) rig.apply(o);
          await w0.wait();
          await rig.agent.settled();
          await new Promise((r) => setTimeout(r, 150)); // the keepers' debounced echo applies (50 ms) belong to the start
        }),
      );
    };
    // Starts, STARTS rounds: each floor's start (ours, then the package's, which stays for the
    // changes), then the agent's; before each round after the first, the floors' routes are
    // flushed, the last agent stopped and its routes flushed. The first round is also
    // reported apart (at the first size, the start path has run only the untimed N=10 round).
    const starts: { floor: number; pkg: number; agent: { agent: number; api: number } }[] = [];
    for (let r = 1; r <= STARTS; r++) {
      if (r > 1) {
        flush(names);
        rig!.stop();
        flush(agentNames);
      }
      const floor = await startOf(bareWrite);
      flush(names);
      const pkg = await startOf(bareWritePackage);
      starts.push({ floor, pkg, agent: await startAgent(r === 1 ? `start-N${n}` : `start${r}-N${n}`) });
    }
    const floorStart = Math.min(...starts.map((x) => x.floor));
    const pkgStart = Math.min(...starts.map((x) => x.pkg));
    const agentStart = starts.map((x) => x.agent).reduce((a, b) => (b.agent < a.agent ? b : a));
    // The agent's change to plan `extra` (every pod's plan gains that CIDR, in place of the one before).
    const changeAgent = (extra: number, name: string): Promise<{ agent: number; api: number }> => {
      const plan = planWith(extra);
      const next = [...rig!.api.pods.values()].map((p) => withPlan(p, plan, rig!.key));
      const w = allInPlace(plan);
      w.expect();
      return profiled(name, () =>
        agentCpuOf(meter, async () => {
          for (const p of next) rig!.apply(p);
          await w.wait();
          await rig!.agent.settled();
          await new Promise((r) => setTimeout(r, 150)); // the keepers' debounced echo applies (50 ms) belong to the change
        }),
      );
    };
    // The first change after the start, with the floors' first: reported apart (the change
    // path's code is still being compiled), then untimed changes until the node has made
    // WARM_POD_CHANGES pod changes, then the measured rounds.
    const firstFloor = await changeOf(bareWrite, '172.22', 1);
    const firstPkg = await changeOf(bareWritePackage, '172.24', 1);
    const first = await changeAgent(1, `first-change-N${n}`);
    const warm = Math.ceil(warmPodChanges / n);
    for (let k = 1; k <= warm; k++) await changeAgent(1 + k, `warm${k}-N${n}`);
    let agentChange = { agent: Infinity, api: 0 };
    for (let k = 1; k <= CHANGES; k++) {
      // Round k: each floor's (k+1)-th change, then the agent's.
      floorChange = Math.min(floorChange, await changeOf(bareWrite, '172.22', k + 1));
      pkgChange = Math.min(pkgChange, await changeOf(bareWritePackage, '172.24', k + 1));
      const c = await changeAgent(1 + warm + k, `change${k}-N${n}`);
      if (c.agent < agentChange.agent) agentChange = c;
    }
    rig?.stop();
    // A row: the agent's CPU (with the stand-in's, subtracted) and each baseline's, all in total over the N pods.
    interface Figures {
      agent: { agent: number; api: number };
      floor: number;
      pkg: number;
      ipBatch?: number;
    }
    const row = (what: string, f: Figures, measured: string): Row => ({
      n,
      what,
      agentUs: f.agent.agent / n,
      apiUs: f.agent.api / n,
      floorUs: f.floor / n,
      packageUs: f.pkg / n,
      ...(f.ipBatch !== undefined ? { ipBatchUs: f.ipBatch / n } : {}),
      measured,
    });
    return [
      row(
        'start',
        { agent: agentStart, floor: floorStart, pkg: pkgStart, ipBatch: ipStart },
        `best of ${STARTS} rounds (each floor's start, then the agent's; ip's once, before them)`,
      ),
      row(
        'first start',
        starts[0]!,
        'once: the first round of the starts (at the first size, the start path has run only the untimed N=10 round); no goal of its own',
      ),
      row(
        'first plan change',
        { agent: first, floor: firstFloor, pkg: firstPkg },
        'once: the first change after the start, before the untimed ones (at the first size, the change path has run only the untimed N=10 round); no goal',
      ),
      row(
        'plan change',
        { agent: agentChange, floor: floorChange, pkg: pkgChange, ipBatch: ipChange },
        `best of ${CHANGES} rounds (each floor's change, then the agent's), after the first change and ${Math.ceil(warmPodChanges / n)} untimed ones`,
      ),
    ];
  } finally {
    cleanup();
  }
}

/** Run the agent benchmarks; `{skipped}` when not root. */
export async function run(): Promise<BenchRow[] | { skipped: string }> {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (network namespaces)' };
  const tmp = mkdtempSync(join(tmpdir(), 'ovr-agent-bench-'));
  const sizes = process.env.OVRT_BENCH_AGENT_SIZES ? process.env.OVRT_BENCH_AGENT_SIZES.split(',').map(Number) : SIZES;
  try {
    const rows: Row[] = [];
    // A small untimed round first, so the first measured size does not pay the JIT's warm-up.
    await measureN(10, tmp, 0);
    for (const n of sizes) rows.push(...(await measureN(n, tmp)));
    const ms = (us: number): string => `${(us / 1000).toFixed(2)} ms CPU/pod`;
    const out: BenchRow[] = [];
    const json: unknown[] = [];
    for (const r of rows) {
      out.push({
        bench: `agent: ${r.what}, N=${r.n}`,
        value: `agent: ${ms(r.agentUs)} (API stand-in's ${ms(r.apiUs)} not counted)`,
        baseline: `bare RtnlClient (native transport): ${ms(r.floorUs)}`,
        ratio: `${(r.agentUs / r.floorUs).toFixed(2)}x`,
      });
      out.push({
        bench: `agent: ${r.what}, N=${r.n}`,
        value: `agent: ${ms(r.agentUs)}`,
        baseline: `bare netlink package client: ${ms(r.packageUs)}`,
        ratio: `${(r.agentUs / r.packageUs).toFixed(2)}x`,
      });
      if (r.ipBatchUs !== undefined) {
        out.push({
          bench: `agent: ${r.what}, N=${r.n}`,
          value: `agent: ${ms(r.agentUs)}`,
          baseline: `ip -n NS -batch: ${ms(r.ipBatchUs)}`,
          ratio: `${(r.agentUs / r.ipBatchUs).toFixed(2)}x`,
        });
      }
      json.push({
        bench: `agent ${r.what}`,
        n: r.n,
        unit: 'µs CPU per pod',
        agent: Math.round(r.agentUs),
        apiStandInSubtracted: Math.round(r.apiUs),
        ratio: +(r.agentUs / r.floorUs).toFixed(2),
        baseline: 'bare RtnlClient, our native transport (open + same route writes + close), same run',
        baselineValue: Math.round(r.floorUs),
        ratioVsPackageClient: +(r.agentUs / r.packageUs).toFixed(2),
        packageClient: Math.round(r.packageUs),
        packageClientBaseline: "bare client of the netlink package (its socket + the same writes + close), same run: the issue's floor",
        ...(r.ipBatchUs !== undefined ? { ratioVsIpBatch: +(r.agentUs / r.ipBatchUs).toFixed(2), ipBatch: Math.round(r.ipBatchUs) } : {}),
        measured: r.measured,
      });
    }
    for (const what of ['start', 'plan change']) {
      const small = rows.find((r) => r.what === what && r.n === Math.min(...sizes));
      const big = rows.find((r) => r.what === what && r.n === Math.max(...sizes));
      if (!small || !big || small === big) continue;
      out.push({
        bench: `agent: ${what} scaling, N=${big.n} vs N=${small.n}`,
        value: `N=${big.n}: ${ms(big.agentUs)}`,
        baseline: `N=${small.n}: ${ms(small.agentUs)}`,
        ratio: `${(big.agentUs / small.agentUs).toFixed(2)}x`,
      });
      json.push({
        bench: `agent ${what} scaling`,
        n: big.n,
        unit: 'µs CPU per pod',
        agent: Math.round(big.agentUs),
        ratio: +(big.agentUs / small.agentUs).toFixed(2),
        baseline: `the agent at N=${small.n}, same run`,
        baselineValue: Math.round(small.agentUs),
      });
    }
    const resDir = join(here, '..', '..', '..', 'test', 'bench', 'results');
    mkdirSync(resDir, { recursive: true });
    writeFileSync(
      join(resDir, 'agent.json'),
      JSON.stringify({ date: new Date().toISOString(), sizes, routesPerPod: ROUTES, rows: json }, null, 2) + '\n',
    );
    return out;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// `node dist/test/bench/agent.bench.js`: this benchmark alone.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await run();
  console.log(Array.isArray(r) ? r.map((x) => `${x.bench}\t${x.ratio}\t${x.value}\t${x.baseline}`).join('\n') : r);
}
