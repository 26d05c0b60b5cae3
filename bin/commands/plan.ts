import { readFile } from 'node:fs/promises';
import { loadObjects } from '../../core/objects.js';
import { encodePlan, parsePlanKey, type PlanKey } from '../../core/plan-codec.js';
import type { Resolution } from '../../core/resolve.js';
import type { Pod } from '../../core/types.js';
import { InputFileError } from '../../core/yaml-docs.js';
import { InputError, parseFlags, UsageError, type Command } from '../cli.js';
import { readInput } from '../io.js';

const help = `Usage: ovnkube-route plan -f OBJECTS.yaml (--pod NAMESPACE/NAME | --all) [--key FILE] [--mode default|opt-in]

Resolve the route plan of pods offline, exactly as the webhook and controller would, from a
bundle of Kubernetes objects (multi-document YAML or a JSON List, as "kubectl get -o yaml"
prints them): Routes, Pods, Namespaces, Services, ReplicaSets, Deployments, Jobs, CronJobs...

Prints the plan JSON exactly as it goes into the pod annotation routes.k8s.ovn.org/plan, or
{"skipped": "<reason>"}. With --all, one JSON object keyed by "namespace/name", one entry per pod.
Conflicts, unresolvable Services and deferred Routes are reported on stderr as warnings.

Signing: without --key the plan is printed unsigned (the node agent refuses unsigned plans;
"ovnkube-route inject" accepts them, since the operator is root). With --key FILE (the
cluster's plan key, base64 of at least 32 bytes, as certs/ makes it) the plan carries the
same HMAC signature the webhook would write, bound to the pod's namespace.

Flags:
  -f, --file FILE    objects to read ("-" for stdin)
      --pod NS/NAME  the pod to resolve
      --all          resolve every pod in the file
      --key FILE     plan-signing key file (optional)
      --mode MODE    default (every pod eligible unless opted out) or opt-in (default: default)
  -h, --help         show this help
`;

function outcome(res: Resolution, pod: Pod, key: PlanKey | undefined): unknown {
  if (res.kind === 'skipped') return { skipped: res.reason };
  return JSON.parse(encodePlan(res.plan, { ...(key ? { key } : {}), namespace: pod.metadata?.namespace ?? '' }));
}

export const planCommand: Command = {
  name: 'plan',
  summary: 'resolve pods\' route plans offline from a file of Kubernetes objects',
  help,
  async run(argv, io) {
    const values = parseFlags(argv, {
          file: { type: 'string', short: 'f' }, pod: { type: 'string' }, all: { type: 'boolean', default: false },
          key: { type: 'string' }, mode: { type: 'string', default: 'default' },
        });
    if (!values.file) throw new UsageError('-f FILE is required');
    if ((values.pod === undefined) === !values.all) throw new UsageError('give exactly one of --pod NAMESPACE/NAME and --all');
    if (values.pod !== undefined && !/^[^/\s]+\/[^/\s]+$/.test(values.pod)) throw new UsageError(`--pod expects NAMESPACE/NAME, got "${values.pod}"`);
    if (values.mode !== 'default' && values.mode !== 'opt-in') throw new UsageError(`--mode must be default or opt-in, got "${values.mode}"`);
    const mode = values.mode;
    let key: PlanKey | undefined;
    if (values.key) {
      let text: string;
      try { text = await readFile(values.key, 'utf8'); } catch (e) { throw new InputError(`${values.key}: cannot read plan key: ${(e as Error).message}`, { cause: e }); }
      try { key = parsePlanKey(text); } catch (e) { throw new InputError(`${values.key}: ${(e as Error).message}`, { cause: e }); }
    }
    const file = values.file === '-' ? '<stdin>' : values.file;
    let idx;
    try {
      idx = loadObjects(await readInput(values.file, io.stdin), file);
    } catch (e) {
      if (e instanceof InputFileError) throw new InputError(e.message);
      throw e;
    }
    const pods = values.all ? idx.pods : [idx.findPod(values.pod!)].filter((p): p is Pod => p !== undefined);
    if (!values.all && pods.length === 0) throw new InputError(`${file}: no Pod ${values.pod} in the file (${idx.pods.length} pods found)`);
    const results: Record<string, unknown> = {};
    for (const pod of pods) {
      const ref = `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
      const res = idx.resolve(pod, mode);
      for (const c of res.conflicts) io.stderr.write(`warning: ${ref}: conflict: ${c.message}\n`);
      for (const u of res.unresolved) io.stderr.write(`warning: ${ref}: Route ${u.route}: Service ${u.namespace}/${u.name} not resolved: ${u.reason}\n`);
      for (const d of res.invalid) io.stderr.write(`warning: ${ref}: Route ${d.route}: ${d.field}: ${d.error}\n`);
      try {
        results[ref] = outcome(res, pod, key);
      } catch (e) {
        throw new InputError(`${ref}: ${(e as Error).message}`, { cause: e });
      }
    }
    if (values.all) {
      const sorted = Object.fromEntries(Object.keys(results).sort().map((k) => [k, results[k]]));
      io.stdout.write(JSON.stringify(sorted, null, 2) + '\n');
    } else {
      io.stdout.write(JSON.stringify(Object.values(results)[0]) + '\n');
    }
    return 0;
  },
};
