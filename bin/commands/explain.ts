/**
 * `ovnkube-route explain --pod NS/NAME`: why a pod has (or lacks) its routes, from a laptop,
 * against the live cluster: every Route and what decided whether it selects the pod, the
 * conflicts and their winners, the plan resolved now and whether the pod's annotation equals
 * it and verifies against the cluster's plan key, what the node agent reported, and the
 * pod's Events of ours. It resolves with core's resolver (core/trace.ts), as the webhook does.
 */
import { canonicalPlanJSON, decodePlan, peekPlan, planHash, type PlanKey } from '../../core/plan-codec.js';
import { decodeInjectorStatus, type InjectorStatus } from '../../core/injector-status.js';
import { ownerChain } from '../../core/owners.js';
import { tracePlan, type PlanTrace } from '../../core/trace.js';
import { PLAN_ANNOTATION, READY_CONDITION, STATUS_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { parseFlags, UsageError, type Command } from '../cli.js';
import { getJSON, getPod, KUBE_FLAGS, KUBE_FLAGS_HELP, loadCluster, podRefOf, type Cluster } from '../kube.js';
import { liveIndexForPod, liveKeys, liveMode, SYSTEM_NAMESPACE, type KeySetting, type ModeSetting } from '../live.js';

const help = `Usage: ovnkube-route explain --pod NAMESPACE/NAME|NAME [-n NS] [--kubeconfig FILE] [--context NAME]
                             [--mode default|opt-in] [--system-namespace NS] [-o text|json]

Explain a pod's routes from the live cluster, in one screen:
  - the pod-level gates (hostNetwork, the routes.k8s.ovn.org/inject label, opt-in mode);
  - every Route, whether it selects the pod, which include or exclude term decided, and why;
  - conflicts between Routes (or rules) and who won, unresolved Services, invalid rules;
  - the plan resolved now, with the Route and rule each route comes from;
  - whether the pod's annotation ${PLAN_ANNOTATION} equals that plan, and whether its signature
    verifies with the cluster's plan key (Secret ovnkube-route-plan-key; if that cannot be read,
    it says so and the signature is not checked);
  - what the node agent reported (annotation ${STATUS_ANNOTATION}): the plan hash in force,
    routes applied and skipped with why, how the routes arrived, when;
  - the pod's Events from ovnkube-route.
The webhook's mode is read from its Deployment (or give --mode). Read-only: nothing is changed.

Needs: get on pods, namespaces, services, events, routes.k8s.ovn.org (and the pod's owners when a
Route selects by owner); optionally get on the plan key Secret and the webhook Deployment.

Flags:
      --pod REF             the pod: NAMESPACE/NAME, or NAME in -n's namespace
${KUBE_FLAGS_HELP}
      --mode MODE           default or opt-in (default: as the webhook's Deployment says)
      --system-namespace NS where ovnkube-route is deployed (default ${SYSTEM_NAMESPACE})
  -o, --output FORMAT       text (default) or json
  -h, --help                show this help
`;

interface EventSummary {
  type: string;
  reason: string;
  message: string;
  component: string;
  count: number;
  last: string;
}

export interface Explanation {
  pod: string;
  node: string;
  context: string;
  server: string;
  mode: ModeSetting;
  trace: PlanTrace;
  /** The plan resolved now, or undefined when the pod gets none. */
  plan?: Plan;
  planHash?: string;
  annotation: {
    present: boolean;
    /** The annotation's plan equals the one resolved now (both absent counts as equal). */
    equalsResolved: boolean;
    planHash?: string;
    /** What the annotation says (signature not verified). */
    plan?: Plan;
    /** ok: verifies with a key of the cluster; no: refused (error says why); unchecked: key not readable. */
    signature: 'ok' | 'no' | 'unchecked' | 'none';
    keyId?: string;
    error?: string;
  };
  keys: { from: string; ids: string[]; secret?: string; entries?: Record<string, string[]>; error?: string };
  agent?: InjectorStatus & { matchesAnnotation: boolean; secondsAfterCreation?: number };
  ready?: { status: string; reason?: string; message?: string };
  events: EventSummary[];
  warnings: string[];
}

function annotationCheck(pod: Pod, resolved: Plan | undefined, keys: KeySetting): Explanation['annotation'] {
  const value = pod.metadata?.annotations?.[PLAN_ANNOTATION];
  const ns = pod.metadata?.namespace ?? '';
  if (value === undefined) return { present: false, equalsResolved: resolved === undefined, signature: 'none' };
  // Parse without a key first (what does it say?), then verify with the cluster's keys.
  const plain = peekPlan(value);
  const parsed = plain.ok ? plain.plan : undefined;
  const equalsResolved = !!parsed && !!resolved && canonicalPlanJSON(parsed) === canonicalPlanJSON(resolved);
  const base = { present: true, equalsResolved, ...(parsed ? { planHash: planHash(parsed), plan: parsed } : {}) };
  if (!plain.ok) return { ...base, signature: 'no', error: plain.error };
  if (keys.error) return { ...base, signature: 'unchecked', error: `plan key not readable: ${keys.error}` };
  const v = decodePlan(value, { namespace: ns, keys: keys.keys, requireSignature: true });
  return v.ok
    ? { ...base, signature: 'ok', ...(v.keyId ? { keyId: v.keyId } : {}) }
    : { ...base, signature: 'no', error: `${v.code}: ${v.error}` };
}

async function podEvents(c: Cluster, pod: Pod, warnings: string[]): Promise<EventSummary[]> {
  const ns = pod.metadata?.namespace ?? '';
  const sel = `involvedObject.kind=Pod,involvedObject.name=${pod.metadata?.name ?? ''}`;
  try {
    const l = await getJSON<{ items?: any[] }>(
      c,
      `/api/v1/namespaces/${encodeURIComponent(ns)}/events?fieldSelector=${encodeURIComponent(sel)}`,
      `list Events of pod ${ns}/${pod.metadata?.name}`,
    );
    return (l?.items ?? [])
      .filter(
        (e) =>
          (!pod.metadata?.uid || !e.involvedObject?.uid || e.involvedObject.uid === pod.metadata.uid) &&
          /^ovnkube-route/.test(String(e.reportingComponent || e.source?.component || '')),
      )
      .map((e) => ({
        type: String(e.type ?? ''),
        reason: String(e.reason ?? ''),
        message: String(e.message ?? ''),
        component: String(e.reportingComponent || e.source?.component || ''),
        count: Number(e.count ?? 1),
        last: String(e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? ''),
      }))
      .sort((a, b) => (a.last < b.last ? -1 : a.last > b.last ? 1 : 0));
  } catch (e) {
    warnings.push(`Events not shown: ${(e as Error).message}`);
    return [];
  }
}

/** Gather everything explain shows (exported for tests). */
export async function explainPod(
  c: Cluster,
  ref: { namespace: string; name: string },
  opts: { mode?: string; systemNamespace: string },
): Promise<Explanation> {
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  const pod = await getPod(c, ref.namespace, ref.name);
  const idx = await liveIndexForPod(c, pod, warn);
  const mode = await liveMode(c, opts.mode, opts.systemNamespace);
  const trace = tracePlan(pod, {
    routes: idx.routes,
    namespace: idx.namespaces.get(ref.namespace),
    service: idx.service,
    owners: ownerChain(pod, idx.lookup),
    mode: mode.mode,
  });
  const plan = trace.resolution.kind === 'plan' ? trace.resolution.plan : undefined;
  const keys = await liveKeys(c, opts.systemNamespace);
  const annotation = annotationCheck(pod, plan, keys);
  const st = decodeInjectorStatus(pod.metadata?.annotations?.[STATUS_ANNOTATION]);
  let agent: Explanation['agent'];
  if (st) {
    const created = Date.parse(String((pod.metadata as { creationTimestamp?: string } | undefined)?.creationTimestamp ?? ''));
    const at = Date.parse(st.time);
    agent = {
      ...st,
      matchesAnnotation: annotation.planHash !== undefined ? st.plan === annotation.planHash : st.plan === '',
      ...(Number.isFinite(created) && Number.isFinite(at) ? { secondsAfterCreation: Math.max(0, (at - created) / 1000) } : {}),
    };
  }
  const cond = pod.status?.conditions?.find((x) => x.type === READY_CONDITION);
  return {
    pod: `${ref.namespace}/${ref.name}`,
    node: String(pod.spec?.nodeName ?? ''),
    context: c.context,
    server: c.server,
    mode,
    trace,
    ...(plan ? { plan, planHash: planHash(plan) } : {}),
    annotation,
    keys: {
      from: keys.from,
      ids: keys.keys.map((k: PlanKey) => k.id),
      ...(keys.secret ? { secret: keys.secret } : {}),
      ...(keys.entries ? { entries: keys.entries } : {}),
      ...(keys.error ? { error: keys.error } : {}),
    },
    ...(agent ? { agent } : {}),
    ...(cond
      ? {
          ready: {
            status: cond.status,
            ...(cond.reason ? { reason: String(cond.reason) } : {}),
            ...(cond.message ? { message: String(cond.message) } : {}),
          },
        }
      : {}),
    events: await podEvents(c, pod, warnings),
    warnings,
  };
}

function cols(rows: string[][]): string[] {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]! + 2)))
      .join('')
      .trimEnd(),
  );
}

const planLine = (dst: string, dev: string, via?: string): string => `${dst} dev ${dev}${via ? ` via ${via}` : ''}`;

/** The text form (exported for tests). */
export function formatExplanation(x: Explanation): string {
  const out: string[] = [];
  const r = x.trace.resolution;
  out.push(`Pod ${x.pod}${x.node ? ` on node ${x.node}` : ' (not scheduled)'}   (context ${x.context}, ${x.server})`);
  out.push(`Mode: ${x.mode.mode} (${x.mode.from})`, '');
  out.push('Gates:');
  for (const g of x.trace.gates) out.push(`  ${g.passed ? 'pass' : 'STOP'}  ${g.code.padEnd(13)} ${g.reason}`);
  const stopped = x.trace.gates.some((g) => !g.passed);
  out.push('', `Routes (${x.trace.routes.length})${stopped ? ' -- not used: a gate above stops the pod' : ''}:`);
  if (x.trace.routes.length === 0) out.push('  (no Route exists)');
  else {
    out.push(
      ...cols([
        ['ROUTE', 'PRIORITY', 'SELECTS', 'DECIDED BY', 'WHY'],
        ...x.trace.routes.map((t) => [t.route, String(t.priority), t.selects, t.decidedBy, t.reason]),
      ]).map((l) => `  ${l}`),
    );
  }
  if (r.conflicts.length) {
    out.push('', 'Conflicts (resolved):');
    for (const c of r.conflicts) out.push(`  ${c.message}`);
  }
  if (r.unresolved.length) {
    out.push('', 'Service rules without a route:');
    for (const u of r.unresolved) out.push(`  Route ${u.route}: Service ${u.namespace}/${u.name}: ${u.reason}`);
  }
  if (r.invalid.length) {
    out.push('', 'Invalid rules (ignored):');
    for (const d of r.invalid) out.push(`  Route ${d.route}: ${d.field}: ${d.error}`);
  }
  out.push('');
  if (r.kind === 'skipped') out.push(`Plan: none (${r.code}: ${r.reason})`);
  else {
    out.push(`Plan (resolved now, hash ${x.planHash}):`);
    const from = new Map((r.origins ?? []).map((o) => [o.dst, `Route ${o.route} ${o.source}`]));
    const rows = r.plan.routes.map((p) => [planLine(p.dst, p.dev, p.via), `from ${from.get(p.dst) ?? '?'}`]);
    if (r.plan.default)
      rows.push([
        `default dev ${r.plan.default.dev}${r.plan.default.via ? ` via ${r.plan.default.via}` : ''}`,
        `from ${from.get('0.0.0.0/0') ?? from.get('::/0') ?? '?'}`,
      ]);
    for (const dev of r.plan.symmetric ?? []) rows.push([`symmetric ${dev}`, 'replies from its addresses leave by it (docs/routing.md)']);
    out.push(...cols(rows).map((l) => `  ${l}`));
  }
  out.push('', `Annotation ${PLAN_ANNOTATION}:`);
  const a = x.annotation;
  if (!a.present)
    out.push(
      `  absent${x.plan ? ' -- but a plan resolves now: the webhook/controller has not stamped it (is the controller running?)' : ' (as expected: no plan)'}`,
    );
  else {
    out.push(
      `  ${a.equalsResolved ? 'equals the plan resolved now' : `DIFFERS from the plan resolved now${a.planHash ? ` (annotation hash ${a.planHash})` : ''}${x.plan ? '' : ': no plan resolves now'}`}`,
    );
    if (!a.equalsResolved && a.plan) {
      const lines = (p: Plan | undefined) =>
        new Set([
          ...(p?.routes ?? []).map((r) => planLine(r.dst, r.dev, r.via)),
          ...(p?.default ? [`default dev ${p.default.dev}${p.default.via ? ` via ${p.default.via}` : ''}`] : []),
          ...(p?.symmetric ?? []).map((d) => `symmetric ${d}`),
        ]);
      const have = lines(a.plan);
      const want = lines(x.plan);
      for (const l of have) if (!want.has(l)) out.push(`    - ${l}   (in the annotation, not resolved now)`);
      for (const l of want) if (!have.has(l)) out.push(`    + ${l}   (resolved now, not in the annotation)`);
      out.push(
        '    The controller re-stamps pods when Routes, Services or labels change; if this lasts, see docs/troubleshooting.md "routes are wrong".',
      );
    }
    out.push(
      `  signature: ${
        a.signature === 'ok'
          ? `verified with key ${a.keyId} of ${keyEntry(x.keys, a.keyId)}`
          : a.signature === 'unchecked'
            ? `NOT CHECKED (${a.error})`
            : `REFUSED: ${a.error}`
      }`,
    );
  }
  out.push('', `Agent report (${STATUS_ANNOTATION}):`);
  const s = x.agent;
  if (!s) out.push(`  none${x.node ? ` (is the agent running on node ${x.node}? pods without a plan get no report)` : ''}`);
  else {
    out.push(
      `  node ${s.node}, written ${s.time}${s.secondsAfterCreation !== undefined ? ` (${s.secondsAfterCreation.toFixed(1)} s after the pod was created)` : ''}`,
    );
    out.push(
      `  plan in force: ${s.plan || '(none)'} ${s.matchesAnnotation ? "(= the annotation's plan)" : "(NOT the annotation's plan: the agent has not applied the current one)"}`,
    );
    out.push(`  routes applied: ${s.applied}, skipped: ${s.skipped.length}`);
    for (const k of s.skipped) out.push(`    ${k.dst}${k.dev ? ` dev ${k.dev}` : ''}: ${k.reason}${k.detail ? ` (${k.detail})` : ''}`);
    if (s.start)
      out.push(
        `  start: ${s.start.mode === 'cni' ? 'routes written during CNI ADD, before any container started' : `after the pod started${s.start.reason ? ` (${s.start.reason})` : ''}`}`,
      );
  }
  if (x.ready)
    out.push(
      `  condition ${READY_CONDITION}: ${x.ready.status}${x.ready.reason ? ` ${x.ready.reason}` : ''}${x.ready.message ? `: ${x.ready.message}` : ''}`,
    );
  out.push('', 'Events (ovnkube-route):');
  if (!x.events.length) out.push('  none');
  for (const e of x.events)
    out.push(`  ${e.last}  ${e.type} ${e.reason} (${e.component}${e.count > 1 ? `, x${e.count}` : ''}): ${e.message}`);
  if (x.warnings.length) {
    out.push('', 'Warnings:');
    for (const w of x.warnings) out.push(`  ${w}`);
  }
  return out.join('\n') + '\n';
}

export const explainCommand: Command = {
  name: 'explain',
  summary: "explain a live pod's routes: which Routes select it and why, its plan, what the agent reported",
  help,
  async run(argv, io) {
    const v = parseFlags(argv, {
      ...KUBE_FLAGS,
      pod: { type: 'string' },
      mode: { type: 'string' },
      'system-namespace': { type: 'string', default: SYSTEM_NAMESPACE },
      output: { type: 'string', short: 'o', default: 'text' },
    });
    if (v.pod === undefined) throw new UsageError('--pod NAMESPACE/NAME is required');
    if (v.output !== 'text' && v.output !== 'json') throw new UsageError(`-o/--output: expected text or json, got "${v.output}"`);
    if (v.mode !== undefined && v.mode !== 'default' && v.mode !== 'opt-in')
      throw new UsageError(`--mode: expected default or opt-in, got "${v.mode}"`);
    const c = await loadCluster(v);
    const ref = podRefOf(v.pod, c);
    const x = await explainPod(c, ref, { ...(v.mode ? { mode: v.mode } : {}), systemNamespace: v['system-namespace'] });
    io.stdout.write(v.output === 'json' ? JSON.stringify(x, null, 2) + '\n' : formatExplanation(x));
    return 0;
  },
};

/**
 * Where the key that verified is: the Secret and the entry holding it (`Secret ns/name
 * (plan.key)`), with the other entries named while a rotation keeps several.
 */
function keyEntry(keys: Explanation['keys'], id: string | undefined): string {
  const mine = id !== undefined ? keys.entries?.[id] : undefined;
  if (!keys.secret || !mine) return keys.from;
  const others = Object.entries(keys.entries ?? {})
    .filter(([k]) => k !== id)
    .flatMap(([, names]) => names)
    .sort();
  return `${keys.secret} (${mine.join(', ')}${others.length ? `; the Secret also holds ${others.join(', ')}` : ''})`;
}
