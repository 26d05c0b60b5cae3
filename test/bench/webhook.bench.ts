/**
 * The webhook's benchmarks. Exported as run() for test/bench/run.ts; rows also go to
 * test/bench/results/webhook.json, each with its ratio and the baseline it is against.
 *
 * 1. Plan resolution over many Routes: desiredPlan (the webhook's and the controller's call,
 *    with the namespace index of webhook/plan.ts) for a pod among 50 and 500 Routes, each
 *    Route naming its namespace (plus 5 cluster-wide ones), against resolving the same pod
 *    over every Route without the index (the same resolution, then the same encode+sign).
 *
 * 2. The admission review end to end, over HTTPS (issue 12, part 4): the real admission app
 *    (webhook-server.ts, as webhook/main.ts wires it, caches fed with benchWorld(50) and
 *    benchWorld(500)) against the floor: bare fastify over HTTPS with the same serving pair,
 *    parsing the same reviews and answering a constant allowed response of the same size.
 *    Every server is its own process; this process is the load generator: one node:https
 *    keep-alive Agent per run with maxSockets = c and c requests in flight, c = 1, 16, 64,
 *    pod CREATE reviews (generateName, no uid in the pod). Runs are interleaved: each round
 *    drives the floor and both webhooks once at each c, in an order that rotates between
 *    rounds; each figure pools the rounds, and each ratio is the median of the per-round
 *    ratios (a burst of load elsewhere on the machine then moves one round, not the ratio).
 *    Also measured: each server's CPU time per review (process.cpuUsage over the run).
 *
 * Environment: WEBHOOK_BENCH_ROUNDS (default 4), WEBHOOK_BENCH_RUN_MS (measured time per run,
 * default 1500), WEBHOOK_BENCH_PROF=DIR (the webhook servers run with --cpu-prof into DIR),
 * WEBHOOK_BENCH_DISTINCT=1 (4096 reviews, each pod with a label of its own, as a StatefulSet's
 * pods are: no review is answered by its inputs; the pods still meet the Routes of their
 * namespace, so after the first pod of a namespace and Route selection the signed plan is
 * shared, and each review costs its own Route selection).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { encodePlan, planKeyFromSecret } from '../../core/plan-codec.js';
import { resolvePlan } from '../../core/resolve.js';
import { PLAN_ANNOTATION, type Pod, type Route } from '../../core/types.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import { desiredPlan, PLAN_MEMO_SIZE, resolveContext } from '../../webhook/plan.js';
import { genCerts } from '../webhook/helpers.js';
import { ratioRow, time, type BenchRow } from './measure.js';
import { podReviews } from './webhook-world.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The desiredPlan micro-benchmark: rows for the table and for webhook.json. */
function planRows(): { rows: BenchRow[]; json: unknown[] } {
  const key = planKeyFromSecret(Buffer.alloc(32, 7));
  const rows: BenchRow[] = [];
  const json: unknown[] = [];
  const perOp: Record<number, number> = {};
  for (const n of [50, 500]) {
    const routes: Route[] = Array.from({ length: n }, (_, i) => ({
      metadata: { name: `r${i}`, resourceVersion: '1', generation: 1 },
      spec: {
        priority: i % 3,
        include:
          i < 5
            ? [{ podSelector: { matchLabels: { app: 'web' } } }]
            : [{ namespaces: [`team-${i}`], podSelector: { matchLabels: { app: 'web' } } }],
        route: [{ dst: `10.${i % 200}.${Math.floor(i / 200)}.0/24`, dev: i % 2 ? 'eth1' : 'eth0' }],
      },
    }));
    const namespaces = Array.from({ length: n }, (_, i) => ({ metadata: { name: `team-${i}` } }));
    const caches = cachesFromObjects({ routes, namespaces });
    const pod: Pod = { metadata: { namespace: 'team-7', name: 'web-1', labels: { app: 'web' } }, spec: {} };
    const full = time(`resolve over all ${n} Routes + sign`, 2000, () => {
      const r = resolvePlan(pod, resolveContext(pod, caches, 'default'));
      return r.kind === 'plan' ? encodePlan(r.plan, { key, namespace: 'team-7' }) : r;
    });
    const indexed = time(`desiredPlan (namespace index), ${n} Routes`, 2000, () =>
      desiredPlan(pod, caches, { mode: 'default', keys: [key] }),
    );
    perOp[n] = indexed.nsPerOp;
    rows.push(ratioRow(`webhook: plan of one pod among ${n} Routes`, indexed, full));
    json.push({
      bench: `webhook desiredPlan, ${n} Routes`,
      unit: 'ns/op',
      value: Math.round(indexed.nsPerOp),
      ratio: +(indexed.nsPerOp / full.nsPerOp).toFixed(2),
      baseline: `resolvePlan over all ${n} Routes + encodePlan, same run`,
      baselineValue: Math.round(full.nsPerOp),
    });
  }
  const scale = perOp[500]! / perOp[50]!;
  rows.push({
    bench: 'webhook: plan of one pod, 500 vs 50 Routes',
    value: `500 Routes: ${(perOp[500]! / 1000).toFixed(1)} µs/op`,
    baseline: `50 Routes: ${(perOp[50]! / 1000).toFixed(1)} µs/op`,
    ratio: `${scale.toFixed(2)}x`,
  });
  json.push({
    bench: 'webhook desiredPlan scaling',
    unit: 'ns/op',
    value: Math.round(perOp[500]!),
    ratio: +scale.toFixed(2),
    baseline: 'desiredPlan with 50 Routes, same run',
    baselineValue: Math.round(perOp[50]!),
  });
  return { rows, json };
}

/** A server process of the HTTPS benchmark (webhook-server.ts). */
interface Server {
  name: string;
  child: ChildProcess;
  port: number;
}

async function startServer(name: string, args: string[], logFd: number, execArgv: string[]): Promise<Server> {
  const child = fork(join(here, 'webhook-server.js'), args, { stdio: ['ignore', 'ignore', logFd, 'ipc'], execArgv });
  const [msg] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`benchmark server ${name} (${args.join(' ')}) exited with code ${String(code)} before listening`);
    }),
  ])) as [{ port: number }];
  return { name, child, port: msg.port };
}

async function stopServer(s: Server): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = once(s.child, 'exit');
  s.child.send('stop');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** The server's CPU time so far (user + system), in µs. */
async function serverCpu(s: Server): Promise<number> {
  const reply = once(s.child, 'message') as Promise<[{ cpu: NodeJS.CpuUsage }]>;
  s.child.send('cpu');
  const [{ cpu }] = await reply;
  return cpu.user + cpu.system;
}

/** POST one review; resolves with the status and, when asked, the body. */
function post(agent: https.Agent, ca: Buffer, port: number, body: Buffer, keep = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        agent,
        ca,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => keep && parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: keep ? Buffer.concat(parts).toString('utf8') : '' }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** One run: c requests in flight for warmMs + runMs; latencies of requests started after the warm-up. */
interface Run {
  lat: number[];
  /** Requests completed per second, after the warm-up. */
  rps: number;
  /** Server CPU µs per request over the whole run. */
  cpuPerReq: number;
}

/** How one run drives a server: c requests in flight, the reviews sent in turn. */
interface Load {
  ca: Buffer;
  bodies: Buffer[];
  c: number;
  warmMs: number;
  runMs: number;
}

async function drive(s: Server, { ca, bodies, c, warmMs, runMs }: Load): Promise<Run> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: c });
  const cpu0 = await serverCpu(s);
  const t0 = performance.now();
  const measureFrom = t0 + warmMs;
  const stopAt = measureFrom + runMs;
  const lat: number[] = [];
  let total = 0;
  let next = 0;
  let lastEnd = measureFrom;
  const worker = async (): Promise<void> => {
    for (let now = performance.now(); now < stopAt; now = performance.now()) {
      const body = bodies[next++ % bodies.length]!;
      const r = await post(agent, ca, s.port, body);
      if (r.status !== 200) throw new Error(`${s.name}: /mutate answered HTTP ${r.status}`);
      const end = performance.now();
      total++;
      if (now >= measureFrom) {
        lat.push(end - now);
        lastEnd = Math.max(lastEnd, end);
      }
    }
  };
  await Promise.all(Array.from({ length: c }, worker));
  const cpu1 = await serverCpu(s);
  agent.destroy();
  return { lat, rps: (lat.length * 1000) / (lastEnd - measureFrom), cpuPerReq: (cpu1 - cpu0) / total };
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const median = (xs: number[]): number =>
  pct(
    [...xs].sort((a, b) => a - b),
    50,
  );

/**
 * Check that the webhook does the work being measured: every review answered 200, allowed,
 * with its uid, and most pods stamped with a plan. Returns the stamped count and the
 * median-sized response (the floor answers with it).
 */
async function sanity(s: Server, ca: Buffer, bodies: Buffer[]): Promise<{ stamped: number; sample: string }> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const responses: string[] = [];
  let stamped = 0;
  for (const body of bodies) {
    const r = await post(agent, ca, s.port, body, true);
    const uid = (JSON.parse(body.toString('utf8')) as { request: { uid: string } }).request.uid;
    const review = JSON.parse(r.body) as { response?: { uid?: string; allowed?: boolean; patch?: string } };
    if (r.status !== 200 || review.response?.uid !== uid || review.response.allowed !== true) {
      throw new Error(`${s.name}: review ${uid} answered HTTP ${r.status} ${r.body.slice(0, 300)}`);
    }
    const patch = review.response.patch ? Buffer.from(review.response.patch, 'base64').toString('utf8') : '';
    // The plan is added either as the annotation (~1 escapes its /) or inside a new annotations map.
    if (patch.includes(PLAN_ANNOTATION.replace('/', '~1')) || patch.includes(JSON.stringify(PLAN_ANNOTATION))) stamped++;
    responses.push(r.body);
  }
  agent.destroy();
  if (stamped < bodies.length / 2) throw new Error(`${s.name}: only ${stamped} of ${bodies.length} pods got a plan; the world is wrong`);
  responses.sort((a, b) => a.length - b.length);
  return { stamped, sample: responses[Math.floor(responses.length / 2)]! };
}

interface Agg {
  lat: number[];
  reqs: number;
  ms: number;
  cpu: number[];
  rps: number[];
  p50: number[];
}

function record(a: Agg, run: Run): void {
  for (const x of run.lat) a.lat.push(x);
  a.reqs += run.lat.length;
  a.ms += (run.lat.length * 1000) / run.rps;
  a.cpu.push(run.cpuPerReq);
  a.rps.push(run.rps);
  a.p50.push(median(run.lat));
}

const fmtMs = (x: number): string => (x < 10 ? x.toFixed(2) : x.toFixed(1));

/** The HTTPS benchmark: rows for the table and for webhook.json. */
async function httpsRows(): Promise<{ rows: BenchRow[]; json: unknown[] }> {
  const rounds = Number(process.env.WEBHOOK_BENCH_ROUNDS ?? 4);
  const runMs = Number(process.env.WEBHOOK_BENCH_RUN_MS ?? 1500);
  const warmMs = 300;
  const prof = process.env.WEBHOOK_BENCH_PROF;
  const distinct = process.env.WEBHOOK_BENCH_DISTINCT === '1';
  const dir = mkdtempSync(join(tmpdir(), 'ovnkube-route-whbench-'));
  const logFd = openSync(join(dir, 'servers.log'), 'a');
  const servers: Server[] = [];
  try {
    await genCerts(dir, ['--san', 'IP:127.0.0.1']);
    const ca = readFileSync(join(dir, 'ca.crt'));
    const profArgv = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
    const sizes = [50, 500];
    const webhooks: Server[] = [];
    const stampedOf: Record<string, string> = {};
    let sample = '';
    const bodiesOf: Record<string, Buffer[]> = {};
    for (const n of sizes) {
      const s = await startServer(`webhook-${n}`, ['webhook', String(n), dir], logFd, profArgv);
      servers.push(s);
      webhooks.push(s);
      // Distinct: more pods than the plan memo holds (PLAN_MEMO_SIZE), each with inputs of its own.
      bodiesOf[s.name] = distinct ? podReviews(n, 2 * PLAN_MEMO_SIZE, true) : podReviews(n, 512);
      const check = await sanity(s, ca, bodiesOf[s.name]!.slice(0, 40));
      stampedOf[s.name] = `${check.stamped} of 40 sampled pods stamped`;
      if (n === sizes[0]) sample = check.sample;
    }
    writeFileSync(join(dir, 'floor-response.json'), sample);
    const floor = await startServer('floor', ['floor', '0', dir, join(dir, 'floor-response.json')], logFd, []);
    servers.push(floor);
    // The floor gets the reviews of the 50-Route world (the 500-Route world's are the same size).
    bodiesOf[floor.name] = bodiesOf[webhooks[0]!.name]!;
    const all = [floor, ...webhooks];
    // Warm every server's JIT before measuring.
    for (const s of all) await drive(s, { ca, bodies: bodiesOf[s.name]!, c: 16, warmMs: 0, runMs: 1000 });
    const cs = [1, 16, 64];
    const agg: Record<string, Agg> = {};
    const key = (s: Server, c: number) => `${s.name}@${c}`;
    for (const s of all) for (const c of cs) agg[key(s, c)] = { lat: [], reqs: 0, ms: 0, cpu: [], rps: [], p50: [] };
    for (let r = 0; r < rounds; r++) {
      for (const c of cs) {
        // Back to back within a round, in an order that rotates between rounds.
        const order = all.map((_, i) => all[(i + r + c) % all.length]!);
        for (const s of order) record(agg[key(s, c)]!, await drive(s, { ca, bodies: bodiesOf[s.name]!, c, warmMs, runMs }));
      }
    }
    return report({
      agg,
      cs,
      floor,
      webhooks,
      stampedOf,
      method: `${rounds} interleaved rounds of ${runMs} ms per server and concurrency; servers in their own processes${distinct ? '; every pod with resolution inputs of its own (no memo hit by inputs; the signed plan shared per namespace and Route selection)' : ''}`,
    });
  } finally {
    for (const s of servers) await stopServer(s);
    closeSync(logFd);
    const log = (() => {
      try {
        return readFileSync(join(dir, 'servers.log'), 'utf8');
      } catch {
        return '';
      }
    })();
    const noisy = log.split('\n').filter((l) => l.includes('"level":"warn"') || l.includes('"level":"error"'));
    if (noisy.length) console.error(`webhook bench: the servers logged ${noisy.length} warnings/errors, e.g. ${noisy[0]}`);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What the rounds measured, per server and concurrency (`name@c`). */
interface Measured {
  agg: Record<string, Agg>;
  cs: number[];
  floor: Server;
  webhooks: Server[];
  stampedOf: Record<string, string>;
  method: string;
}

function report({ agg, cs, floor, webhooks, stampedOf, method }: Measured): { rows: BenchRow[]; json: unknown[] } {
  const rows: BenchRow[] = [];
  const json: unknown[] = [];
  const stat = (a: Agg) => {
    const sorted = [...a.lat].sort((x, y) => x - y);
    return { p50: pct(sorted, 50), p99: pct(sorted, 99), rps: (a.reqs * 1000) / a.ms, cpu: median(a.cpu) };
  };
  const floorName = 'bare fastify HTTPS floor (same serving pair, same reviews, constant allowed response of the same size), same run';
  const perN: Record<string, ReturnType<typeof stat>> = {};
  for (const c of cs) {
    const fa = agg[`${floor.name}@${c}`]!;
    const f = stat(fa);
    for (const w of webhooks) {
      const wa = agg[`${w.name}@${c}`]!;
      const s = stat(wa);
      perN[`${w.name}@${c}`] = s;
      const n = Number(w.name.split('-')[1]);
      // Per-round ratios (runs of one round are back to back), then their median and range.
      const p50r = wa.p50.map((x, i) => x / fa.p50[i]!);
      const rpsr = wa.rps.map((x, i) => x / fa.rps[i]!);
      const cpur = wa.cpu.map((x, i) => x / fa.cpu[i]!);
      const range = (xs: number[]) => [+Math.min(...xs).toFixed(2), +Math.max(...xs).toFixed(2)];
      const p50Ratio = median(p50r);
      const rpsRatio = median(rpsr);
      rows.push({
        bench: `webhook: HTTPS review, ${n} Routes, c=${c} (p50 / throughput)`,
        ratio: `${p50Ratio.toFixed(2)}x / ${rpsRatio.toFixed(2)}x`,
        value: `p50 ${fmtMs(s.p50)} ms, p99 ${fmtMs(s.p99)} ms, ${Math.round(s.rps)}/s`,
        baseline: `fastify floor: p50 ${fmtMs(f.p50)} ms, p99 ${fmtMs(f.p99)} ms, ${Math.round(f.rps)}/s`,
      });
      const common = { routes: n, concurrency: c, method, world: stampedOf[w.name] };
      json.push(
        {
          bench: `webhook HTTPS /mutate p50, ${n} Routes, c=${c}`,
          unit: 'ms',
          value: +s.p50.toFixed(3),
          ratio: +p50Ratio.toFixed(2),
          ratioRange: range(p50r),
          baseline: `${floorName}: p50`,
          baselineValue: +f.p50.toFixed(3),
          goal: 'ratio <= 2',
          met: p50Ratio <= 2,
          ...common,
        },
        {
          bench: `webhook HTTPS /mutate p99, ${n} Routes, c=${c}`,
          unit: 'ms',
          value: +s.p99.toFixed(3),
          ratio: +(s.p99 / f.p99).toFixed(2),
          baseline: `${floorName}: p99`,
          baselineValue: +f.p99.toFixed(3),
          ...common,
        },
        {
          bench: `webhook HTTPS /mutate throughput, ${n} Routes, c=${c}`,
          unit: 'reviews/s',
          value: Math.round(s.rps),
          ratio: +rpsRatio.toFixed(2),
          ratioRange: range(rpsr),
          baseline: `${floorName}: throughput`,
          baselineValue: Math.round(f.rps),
          goal: 'ratio >= 0.5',
          met: rpsRatio >= 0.5,
          ...common,
        },
        {
          bench: `webhook HTTPS /mutate server CPU per review, ${n} Routes, c=${c}`,
          unit: 'µs',
          value: Math.round(s.cpu),
          ratio: +median(cpur).toFixed(2),
          ratioRange: range(cpur),
          baseline: `${floorName}: server CPU per review`,
          baselineValue: Math.round(f.cpu),
          ...common,
        },
      );
    }
  }
  // How the cost grows from 50 to 500 Routes.
  const [w50, w500] = webhooks;
  for (const c of cs) {
    const a = perN[`${w50!.name}@${c}`]!;
    const b = perN[`${w500!.name}@${c}`]!;
    rows.push({
      bench: `webhook: HTTPS review, 500 vs 50 Routes, c=${c} (p50 / server CPU)`,
      ratio: `${(b.p50 / a.p50).toFixed(2)}x / ${(b.cpu / a.cpu).toFixed(2)}x`,
      value: `500 Routes: p50 ${fmtMs(b.p50)} ms, ${Math.round(b.cpu)} µs CPU/review`,
      baseline: `50 Routes: p50 ${fmtMs(a.p50)} ms, ${Math.round(a.cpu)} µs CPU/review`,
    });
    json.push(
      {
        bench: `webhook HTTPS /mutate p50 scaling, c=${c}`,
        unit: 'ms',
        value: +b.p50.toFixed(3),
        ratio: +(b.p50 / a.p50).toFixed(2),
        baseline: 'the webhook with 50 Routes, p50, same run',
        baselineValue: +a.p50.toFixed(3),
        concurrency: c,
      },
      {
        bench: `webhook HTTPS /mutate server CPU per review scaling, c=${c}`,
        unit: 'µs',
        value: Math.round(b.cpu),
        ratio: +(b.cpu / a.cpu).toFixed(2),
        baseline: 'the webhook with 50 Routes, server CPU per review, same run',
        baselineValue: Math.round(a.cpu),
        concurrency: c,
      },
    );
  }
  return { rows, json };
}

export async function run(): Promise<BenchRow[]> {
  const plan = planRows();
  const rows = [...plan.rows];
  const json = [...plan.json];
  let skipped: string | undefined;
  try {
    const h = await httpsRows();
    rows.push(...h.rows);
    json.push(...h.json);
  } catch (e) {
    skipped = `HTTPS benchmark failed: ${(e as Error).message}`;
    console.error(`webhook bench: ${skipped}`);
  }
  const resDir = join(here, '..', '..', '..', 'test', 'bench', 'results');
  mkdirSync(resDir, { recursive: true });
  writeFileSync(
    join(resDir, process.env.WEBHOOK_BENCH_DISTINCT === '1' ? 'webhook-distinct.json' : 'webhook.json'),
    JSON.stringify({ date: new Date().toISOString(), ...(skipped ? { notRun: [skipped] } : {}), rows: json }, null, 2) + '\n',
  );
  if (skipped) throw new Error(skipped);
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const x of await run()) console.log(`${x.bench}\t${x.ratio}\t${x.value}\t${x.baseline}`);
}
