/**
 * The objects plan resolution needs, read from a live cluster into core's ObjectIndex (the
 * same index `plan -f` builds from a file), plus the cluster's settings the webhook runs
 * with: its --mode (from its Deployment) and the plan keys (from the plan key Secret).
 * What cannot be read (RBAC) is said, never guessed silently.
 */
import { ObjectIndex } from '../core/objects.js';
import { parsePlanKey, type PlanKey } from '../core/plan-codec.js';
import type { InjectMode } from '../core/resolve.js';
import { validateRoute } from '../core/schema.js';
import type { KubeObject, Namespace, Pod, Route, Service } from '../core/types.js';
import { InputError } from './cli.js';
import { ApiError, fetchOwners, getJSON, listJSON, routesPath, type Cluster } from './kube.js';

/** Where the webhook, its Deployment and the plan key Secret live (deploy/). */
export const SYSTEM_NAMESPACE = 'ovnkube-route';
export const WEBHOOK_DEPLOYMENT = 'ovnkube-route-webhook';
export const PLAN_KEY_SECRET = 'ovnkube-route-plan-key';

const usesOwners = (routes: Route[]): boolean =>
  routes.some((r) => [...(r.spec?.include ?? []), ...(r.spec?.exclude ?? [])].some((t) => t.owners !== undefined));

/** Every Route of the cluster (an InputError when the CRD is missing or they cannot be listed). */
export async function liveRoutes(c: Cluster): Promise<Route[]> {
  let routes: Route[];
  try {
    routes = await listJSON<Route>(c, routesPath, 'Route', 'list Routes (k8s.ovn.org/v1)');
  } catch (e) {
    if (e instanceof ApiError && e.status === 404)
      throw new InputError('list Routes: the API server does not serve routes.k8s.ovn.org/v1 (is crds/route.yaml applied?)');
    throw e;
  }
  for (const r of routes) {
    const errs = validateRoute(r);
    if (errs.length) throw new InputError(errs.map((x) => `Route ${r.metadata?.name ?? ''}: ${x.path}: ${x.message}`).join('\n'));
  }
  return routes;
}

/** Services the Routes' svc rules name, read one by one (absent ones stay absent: "Service not found"). */
async function servicesOf(c: Cluster, routes: Route[], warn: (m: string) => void): Promise<Service[]> {
  const want = new Set<string>();
  for (const r of routes) for (const s of r.spec?.svc ?? []) want.add(`${s.namespace}/${s.name}`);
  const out: Service[] = [];
  for (const k of [...want].sort()) {
    const [ns, name] = k.split('/') as [string, string];
    try {
      const s = await getJSON<Service>(
        c,
        `/api/v1/namespaces/${encodeURIComponent(ns)}/services/${encodeURIComponent(name)}`,
        `Service ${k}`,
        { allow404: true },
      );
      if (s) out.push({ ...s, kind: 'Service' });
    } catch (e) {
      warn(`cannot read Service ${k}: ${(e as Error).message}; rules naming it resolve as "Service not found"`);
    }
  }
  return out;
}

/** The index for one pod: all Routes, its Namespace, the named Services, its owner chain. */
export async function liveIndexForPod(c: Cluster, pod: Pod, warn: (m: string) => void): Promise<ObjectIndex> {
  const routes = await liveRoutes(c);
  const ns = pod.metadata?.namespace ?? '';
  const objs: KubeObject[] = [...routes.map((r) => ({ ...r, kind: 'Route' })), pod];
  try {
    const n = await getJSON<Namespace>(c, `/api/v1/namespaces/${encodeURIComponent(ns)}`, `Namespace ${ns}`, { allow404: true });
    if (n) objs.push({ ...n, kind: 'Namespace' });
  } catch (e) {
    warn(`cannot read Namespace ${ns}: ${(e as Error).message}; namespace labels are taken as none`);
  }
  objs.push(...(await servicesOf(c, routes, warn)));
  if (usesOwners(routes)) objs.push(...(await fetchOwners(c, pod, warn)));
  return new ObjectIndex().add(objs);
}

const OWNER_LISTS: [string, string][] = [
  ['ReplicaSet', '/apis/apps/v1/replicasets'],
  ['Deployment', '/apis/apps/v1/deployments'],
  ['StatefulSet', '/apis/apps/v1/statefulsets'],
  ['DaemonSet', '/apis/apps/v1/daemonsets'],
  ['Job', '/apis/batch/v1/jobs'],
  ['CronJob', '/apis/batch/v1/cronjobs'],
];

/** The index for every pod (of one namespace, or all): lists instead of single reads. */
export async function liveIndexForAll(c: Cluster, namespace: string | undefined, warn: (m: string) => void): Promise<ObjectIndex> {
  const routes = await liveRoutes(c);
  const podsPath = namespace ? `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods` : '/api/v1/pods';
  const objs: KubeObject[] = [...routes.map((r) => ({ ...r, kind: 'Route' }))];
  objs.push(
    ...(await listJSON<Pod>(c, podsPath, 'Pod', namespace ? `list pods of namespace ${namespace}` : 'list pods of all namespaces')),
  );
  try {
    objs.push(...(await listJSON<Namespace>(c, '/api/v1/namespaces', 'Namespace', 'list Namespaces')));
  } catch (e) {
    warn(`${(e as Error).message}; namespace labels are taken as none`);
  }
  objs.push(...(await servicesOf(c, routes, warn)));
  if (usesOwners(routes)) {
    for (const [kind, path] of OWNER_LISTS) {
      try {
        objs.push(...(await listJSON<KubeObject>(c, path, kind, `list ${kind}s`)));
      } catch (e) {
        warn(`${(e as Error).message}; owner chains through ${kind}s stop there`);
      }
    }
  }
  return new ObjectIndex().add(objs);
}

export interface ModeSetting {
  mode: InjectMode;
  from: string;
}

/**
 * The webhook's --mode: `given` when the user named it, else read from the webhook
 * Deployment's args or env, else "default" (and saying it was not readable).
 */
export async function liveMode(c: Cluster, given: string | undefined, systemNs: string): Promise<ModeSetting> {
  if (given === 'default' || given === 'opt-in') return { mode: given, from: '--mode' };
  const where = `Deployment ${systemNs}/${WEBHOOK_DEPLOYMENT}`;
  try {
    const d = await getJSON<{
      spec?: { template?: { spec?: { containers?: { args?: string[]; env?: { name: string; value?: string }[] }[] } } };
    }>(c, `/apis/apps/v1/namespaces/${encodeURIComponent(systemNs)}/deployments/${WEBHOOK_DEPLOYMENT}`, where, { allow404: true });
    if (!d) return { mode: 'default', from: `default (${where} not found; give --mode if the webhook runs elsewhere)` };
    for (const ctr of d.spec?.template?.spec?.containers ?? []) {
      const args = ctr.args ?? [];
      for (const [i, a] of args.entries()) {
        const v = a.startsWith('--mode=') ? a.slice(7) : a === '--mode' ? args[i + 1] : undefined;
        if (v === 'default' || v === 'opt-in') return { mode: v, from: `${where} args` };
      }
      const env = ctr.env?.find((e) => e.name === 'OVNKUBE_ROUTE_MODE')?.value;
      if (env === 'default' || env === 'opt-in') return { mode: env, from: `${where} env OVNKUBE_ROUTE_MODE` };
    }
    return { mode: 'default', from: `${where} (no --mode: the default)` };
  } catch (e) {
    return { mode: 'default', from: `default (${(e as Error).message}; give --mode)` };
  }
}

export interface KeySetting {
  keys: PlanKey[];
  /** The Secret and its entries, e.g. `Secret ns/name (plan-next.key, plan.key)`. */
  from: string;
  /** The Secret alone, e.g. `Secret ns/name`. */
  secret?: string;
  /** The Secret entries holding each key id (a rotation keeps several entries). */
  entries?: Record<string, string[]>;
  error?: string;
}

/** The plan keys: every entry of the plan key Secret (rotation keeps several), or why they cannot be read. */
export async function liveKeys(c: Cluster, systemNs: string): Promise<KeySetting> {
  const where = `Secret ${systemNs}/${PLAN_KEY_SECRET}`;
  try {
    const s = await getJSON<{ data?: Record<string, string> }>(
      c,
      `/api/v1/namespaces/${encodeURIComponent(systemNs)}/secrets/${PLAN_KEY_SECRET}`,
      where,
      { allow404: true },
    );
    if (!s) return { keys: [], from: where, error: `${where} not found` };
    const keys: PlanKey[] = [];
    const entries: Record<string, string[]> = {};
    const bad: string[] = [];
    for (const [k, v] of Object.entries(s.data ?? {}).sort()) {
      try {
        const key = parsePlanKey(Buffer.from(v, 'base64').toString('utf8'));
        if (!entries[key.id]) keys.push(key);
        (entries[key.id] ??= []).push(k);
      } catch (e) {
        bad.push(`${k}: ${(e as Error).message}`);
      }
    }
    if (keys.length === 0) return { keys, from: where, error: `${where} holds no usable key${bad.length ? ` (${bad.join('; ')})` : ''}` };
    return {
      keys,
      from: `${where} (${Object.keys(s.data ?? {})
        .sort()
        .join(', ')})`,
      secret: where,
      entries,
    };
  } catch (e) {
    return { keys: [], from: where, error: (e as Error).message };
  }
}
