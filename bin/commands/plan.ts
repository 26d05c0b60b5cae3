import { readFile } from 'node:fs/promises';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { loadObjects, type ObjectIndex } from '../../core/objects.js';
import { canonicalPlanJSON, encodePlan, parsePlanKey, peekPlan, planHash, type PlanKey } from '../../core/plan-codec.js';
import type { InjectMode, Resolution } from '../../core/resolve.js';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Pod } from '../../core/types.js';
import { routeWarnings } from '../../core/warnings.js';
import { InputFileError } from '../../core/yaml-docs.js';
import { InputError, parseFlags, UsageError, type Command } from '../cli.js';
import { readInput } from '../io.js';
import { KUBE_FLAGS, KUBE_FLAGS_HELP } from '../kube-flags.js';

const help = `Usage: ovnkube-route plan -f OBJECTS.yaml (--pod NAMESPACE/NAME | --all) [--key FILE] [--mode default|opt-in] [-o json|table]
       ovnkube-route plan [--kubeconfig FILE] [--context NAME] [-n NS] (--pod REF | --all) [--key FILE]
                          [--mode default|opt-in] [-o json|table]

Resolve the route plan of pods exactly as the webhook and controller would: with -f, offline
from a bundle of Kubernetes objects (multi-document YAML or a JSON List, as "kubectl get -o yaml"
prints them: Routes, Pods, Namespaces, Services, ReplicaSets, Deployments, Jobs, CronJobs...);
without -f, from the live cluster's objects (kubeconfig as kubectl finds it: --kubeconfig, else
$KUBECONFIG, else ~/.kube/config). Live, the mode is the webhook Deployment's unless --mode is given.

Prints the plan JSON exactly as it goes into the pod annotation routes.k8s.ovn.org/plan, or
{"skipped": "<reason>"}. With --all, one JSON object keyed by "namespace/name", one entry per
pod (-n NS: the pods of one namespace, live), or with -o table one line per pod: its plan hash
or why it has none, the number of routes, whether the pod's annotation carries that plan
(=, differs, absent), the id of the key that signed it (not verified: see explain) and what
the node agent reported. -o table is the default of a live --all.
Conflicts, unresolvable Services and deferred Routes are reported on stderr as warnings, and so
is, once per Route that yields a plan, what the controller also puts in the Route's Warnings
condition: a defaultRoute that moves ClusterIP and DNS traffic off eth0, a literal gateway
that cannot be right on every node (docs/routing.md).

Signing: without --key the plan is printed unsigned (the node agent refuses unsigned plans;
"ovnkube-route inject" accepts them, since the operator is root). With --key FILE (the
cluster's plan key, base64 of at least 32 bytes, as certs/ makes it) the plan carries the
same HMAC signature the webhook would write, bound to the pod's namespace.

Flags:
  -f, --file FILE           objects to read ("-" for stdin); without it, the live cluster
      --pod REF             the pod to resolve: NAMESPACE/NAME (live: or NAME in -n's namespace)
      --all                 resolve every pod
      --key FILE            plan-signing key file (optional)
      --mode MODE           default (every pod eligible unless opted out) or opt-in
                            (default: default; live: as the webhook's Deployment says)
  -o, --output FORMAT       json or table (default json; live --all: table)
${KUBE_FLAGS_HELP}
  -h, --help                show this help
`;

/** One line of the --all table. */
export function tableRows(pods: Pod[], resolved: Map<Pod, Resolution>): string[][] {
  const rows = [['POD', 'NODE', 'PLAN', 'ROUTES', 'ANNOTATION', 'SIGNED BY', 'AGENT']];
  for (const pod of pods) {
    const res = resolved.get(pod)!;
    const ann = pod.metadata?.annotations?.[PLAN_ANNOTATION];
    const parsed = ann === undefined ? undefined : peekPlan(ann);
    const annPlan = parsed?.ok ? parsed.plan : undefined;
    const want = res.kind === 'plan' ? res.plan : undefined;
    const annCol =
      ann === undefined
        ? want
          ? 'absent'
          : '-'
        : !annPlan
          ? 'unreadable'
          : want && canonicalPlanJSON(annPlan) === canonicalPlanJSON(want)
            ? '='
            : 'differs';
    const st = decodeInjectorStatus(pod.metadata?.annotations?.[STATUS_ANNOTATION]);
    const agentCol = !st
      ? '-'
      : `${annPlan && st.plan === planHash(annPlan) ? "annotation's plan" : st.plan ? 'another plan' : 'no plan'}: ${st.applied} applied, ${st.skipped.length} skipped`;
    rows.push([
      `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`,
      String(pod.spec?.nodeName ?? ''),
      want ? planHash(want) : `skipped: ${res.kind === 'skipped' ? res.code : ''}`,
      want ? String(want.routes.length + (want.default ? 1 : 0)) : '0',
      annCol,
      ann === undefined ? '-' : (/"sig":"hmac-sha256:([0-9a-f]{12}):/.exec(ann)?.[1] ?? 'unsigned'),
      agentCol,
    ]);
  }
  return rows;
}

export function formatTable(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]! + 2)))
          .join('')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

function outcome(res: Resolution, pod: Pod, key: PlanKey | undefined): unknown {
  if (res.kind === 'skipped') return { skipped: res.reason };
  return JSON.parse(encodePlan(res.plan, { ...(key ? { key } : {}), namespace: pod.metadata?.namespace ?? '' }));
}

export const planCommand: Command = {
  name: 'plan',
  summary: "resolve pods' route plans offline from a file of Kubernetes objects",
  help,
  async run(argv, io) {
    const values = parseFlags(argv, {
      file: { type: 'string', short: 'f' },
      pod: { type: 'string' },
      all: { type: 'boolean', default: false },
      key: { type: 'string' },
      mode: { type: 'string' },
      output: { type: 'string', short: 'o' },
      ...KUBE_FLAGS,
    });
    const live = values.file === undefined;
    if (!live && (values.kubeconfig !== undefined || values.context !== undefined || values.namespace !== undefined)) {
      throw new UsageError('-f FILE reads objects from a file; --kubeconfig, --context and -n are for the live cluster (leave out -f)');
    }
    if ((values.pod === undefined) === !values.all) throw new UsageError('give exactly one of --pod NAMESPACE/NAME and --all');
    if (!live && values.pod !== undefined && !/^[^/\s]+\/[^/\s]+$/.test(values.pod))
      throw new UsageError(`--pod expects NAMESPACE/NAME, got "${values.pod}"`);
    if (values.mode !== undefined && values.mode !== 'default' && values.mode !== 'opt-in')
      throw new UsageError(`--mode must be default or opt-in, got "${values.mode}"`);
    const output = values.output ?? (live && values.all ? 'table' : 'json');
    if (output !== 'json' && output !== 'table') throw new UsageError(`-o/--output: expected json or table, got "${output}"`);
    let key: PlanKey | undefined;
    if (values.key) {
      let text: string;
      try {
        text = await readFile(values.key, 'utf8');
      } catch (e) {
        throw new InputError(`${values.key}: cannot read plan key: ${(e as Error).message}`, { cause: e });
      }
      try {
        key = parsePlanKey(text);
      } catch (e) {
        throw new InputError(`${values.key}: ${(e as Error).message}`, { cause: e });
      }
    }
    let idx: ObjectIndex;
    let pods: Pod[];
    let mode: InjectMode = (values.mode as InjectMode | undefined) ?? 'default';
    if (live) {
      // The cluster code (node:https, the client) only for a live run: offline start-up stays small.
      const [{ getPod, loadCluster, podRefOf }, { liveIndexForAll, liveIndexForPod, liveMode, SYSTEM_NAMESPACE }] = await Promise.all([
        import('../kube.js'),
        import('../live.js'),
      ]);
      const c = await loadCluster(values);
      const warn = (m: string) => io.stderr.write(`warning: ${m}\n`);
      if (values.all) {
        idx = await liveIndexForAll(c, values.namespace, warn);
        pods = idx.pods;
      } else {
        const ref = podRefOf(values.pod!, c);
        const pod = await getPod(c, ref.namespace, ref.name);
        idx = await liveIndexForPod(c, pod, warn);
        pods = [pod];
      }
      const m = await liveMode(c, values.mode, SYSTEM_NAMESPACE);
      mode = m.mode;
      if (values.mode === undefined) io.stderr.write(`mode: ${m.mode} (${m.from})\n`);
    } else {
      const file = values.file === '-' ? '<stdin>' : values.file!;
      try {
        idx = loadObjects(await readInput(values.file!, io), file);
      } catch (e) {
        if (e instanceof InputFileError) throw new InputError(e.message);
        throw e;
      }
      pods = values.all ? idx.pods : [idx.findPod(values.pod!)].filter((p): p is Pod => p !== undefined);
      if (!values.all && pods.length === 0)
        throw new InputError(`${file}: no Pod ${values.pod} in the file (${idx.pods.length} pods found)`);
    }
    pods = [...pods].sort((a, b) => {
      const ka = `${a.metadata?.namespace ?? ''}/${a.metadata?.name ?? ''}`;
      const kb = `${b.metadata?.namespace ?? ''}/${b.metadata?.name ?? ''}`;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    const results: Record<string, unknown> = {};
    const resolved = new Map<Pod, Resolution>();
    const warned = new Set<string>();
    for (const pod of pods) {
      const ref = `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
      const res = idx.resolve(pod, mode);
      resolved.set(pod, res);
      for (const c of res.conflicts) io.stderr.write(`warning: ${ref}: conflict: ${c.message}\n`);
      for (const u of res.unresolved)
        io.stderr.write(`warning: ${ref}: Route ${u.route}: Service ${u.namespace}/${u.name} not resolved: ${u.reason}\n`);
      for (const d of res.invalid) io.stderr.write(`warning: ${ref}: Route ${d.route}: ${d.field}: ${d.error}\n`);
      // Each Route that contributes to a plan: what core/warnings.ts says about it, once.
      if (res.kind === 'plan') {
        for (const name of res.routes) {
          if (warned.has(name)) continue;
          warned.add(name);
          const route = idx.routes.find((r) => r.metadata?.name === name);
          for (const w of route ? routeWarnings(route, idx.service) : [])
            io.stderr.write(`warning: Route ${name}: ${w.reason}: ${w.message}\n`);
        }
      }
      try {
        results[ref] = outcome(res, pod, key);
      } catch (e) {
        throw new InputError(`${ref}: ${(e as Error).message}`, { cause: e });
      }
    }
    if (output === 'table') {
      io.stdout.write(formatTable(tableRows(pods, resolved)));
    } else if (values.all) {
      const sorted = Object.fromEntries(
        Object.keys(results)
          .sort()
          .map((k) => [k, results[k]]),
      );
      io.stdout.write(JSON.stringify(sorted, null, 2) + '\n');
    } else {
      io.stdout.write(JSON.stringify(Object.values(results)[0]) + '\n');
    }
    return 0;
  },
};
