/**
 * An in-memory index of Kubernetes objects (from `kubectl get -o yaml` output, multi-document
 * YAML or a JSON List), with the lookups plan resolution needs. Used by the offline CLI and
 * by tests; the webhook backs the same lookups with informer caches.
 */
import { ownerChain, type OwnerLookup } from './owners.js';
import { resolvePlan, type InjectMode, type Resolution } from './resolve.js';
import { dropNulls, validateRoute } from './schema.js';
import type { KubeObject, Namespace, Pod, Route, Service } from './types.js';
import { InputFileError, parseDocs } from './yaml-docs.js';

const key = (ns: string | undefined, name: string | undefined) => `${ns ?? ''}/${name ?? ''}`;

export class ObjectIndex {
  readonly routes: Route[] = [];
  readonly pods: Pod[] = [];
  readonly namespaces = new Map<string, Namespace>();
  readonly services = new Map<string, Service>();
  /** kind -> "ns/name" -> object, for owner chains. */
  readonly workloads = new Map<string, Map<string, KubeObject>>();

  /** Add objects; Lists are flattened. Unknown kinds are ignored. */
  add(objs: KubeObject[]): this {
    for (const o of objs) {
      const kind = o.kind ?? '';
      if (kind.endsWith('List') && Array.isArray((o as { items?: unknown }).items)) {
        this.add((o as { items: KubeObject[] }).items.map((i) => ({ kind: kind.slice(0, -4), ...i })));
        continue;
      }
      const m = o.metadata ?? {};
      // As the API server stores it: null fields dropped.
      if (kind === 'Route') this.routes.push(dropNulls(o) as Route);
      else if (kind === 'Pod') this.pods.push(o as Pod);
      else if (kind === 'Namespace') this.namespaces.set(m.name ?? '', o);
      else if (kind === 'Service') this.services.set(key(m.namespace, m.name), o as Service);
      else {
        let byName = this.workloads.get(kind);
        if (!byName) this.workloads.set(kind, (byName = new Map()));
        byName.set(key(m.namespace, m.name), o);
      }
    }
    return this;
  }

  readonly lookup: OwnerLookup = (kind, ns, name) => this.workloads.get(kind)?.get(key(ns, name));
  service = (ns: string, name: string): Service | undefined => this.services.get(key(ns, name));

  /** Resolve one pod against everything in the index. */
  resolve(pod: Pod, mode: InjectMode): Resolution {
    return resolvePlan(pod, {
      routes: this.routes,
      namespace: this.namespaces.get(pod.metadata?.namespace ?? ''),
      service: this.service,
      owners: ownerChain(pod, this.lookup),
      mode,
    });
  }

  findPod(ref: string): Pod | undefined {
    return this.pods.find((p) => key(p.metadata?.namespace, p.metadata?.name) === ref);
  }
}

/** Parse a bundle of objects; every Route is validated against the CRD schema. */
export function loadObjects(text: string, file: string): ObjectIndex {
  const objs: KubeObject[] = [];
  for (const [i, d] of parseDocs(text, file).entries()) {
    const v = d.value;
    if (!v || typeof v !== 'object' || Array.isArray(v) || typeof (v as KubeObject).kind !== 'string') {
      throw new InputFileError(`${file}: document ${i}: expected a Kubernetes object with a "kind"`);
    }
    objs.push(v as KubeObject);
  }
  const idx = new ObjectIndex().add(objs);
  for (const r of idx.routes) {
    const errs = validateRoute(r);
    if (errs.length)
      throw new InputFileError(errs.map((e) => `${file}: Route ${r.metadata?.name ?? '<unnamed>'}: ${e.path}: ${e.message}`).join('\n'));
  }
  return idx;
}
