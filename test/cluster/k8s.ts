import type { KubeConfig } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { parseAllDocuments } from 'yaml';

/** A Kubernetes object as read from a manifest. */
export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** The raw answer of the API server: HTTP status and the parsed JSON body (a Status on errors). */
export interface KubeResponse {
  status: number;
  body: any;
}

/**
 * One request to the API server as the kubeconfig's user, with no client library in
 * between, so tests see exactly what the server answered (status code and Status message).
 */
export async function kubeRequest(
  kc: KubeConfig,
  method: string,
  path: string,
  opts: { query?: Record<string, string>; body?: unknown; contentType?: string; headers?: Record<string, string> } = {},
): Promise<KubeResponse> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
  const reqOpts: RequestOptions = { method, headers: { Accept: 'application/json', ...opts.headers }, timeout: 60_000 };
  await kc.applyToHTTPSOptions(reqOpts);
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (payload !== undefined) {
    reqOpts.headers = {
      ...reqOpts.headers,
      'Content-Type': opts.contentType ?? 'application/json',
      'Content-Length': Buffer.byteLength(payload),
    };
  }
  return new Promise((resolve, reject) => {
    const req = request(url, reqOpts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON: keep the text */
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: no answer in 60 s`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/**
 * Every object in a (multi-document) YAML file; anchors and aliases are resolved, empty
 * documents skipped, and `kind: List` flattened. A syntax error names the file.
 */
export function loadYamlDocuments(path: string): ManifestObject[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  const out: ManifestObject[] = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const obj = doc.toJS({ maxAliasCount: -1 }) as ManifestObject | null;
    if (obj === null || obj === undefined) continue;
    if (obj.kind === 'List' && Array.isArray(obj.items)) out.push(...(obj.items as ManifestObject[]));
    else out.push(obj);
  }
  return out;
}

interface ResourceInfo {
  name: string;
  namespaced: boolean;
}
/** kind -> resource, per apiVersion, from the server's discovery documents. */
export type DiscoveryCache = Map<string, Map<string, ResourceInfo>>;

async function resourceFor(kc: KubeConfig, apiVersion: string, kind: string, cache: DiscoveryCache): Promise<ResourceInfo> {
  let kinds = cache.get(apiVersion);
  if (!kinds) {
    const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const res = await kubeRequest(kc, 'GET', path);
    if (res.status !== 200) throw new Error(`apiVersion ${apiVersion} is not served (GET ${path}: HTTP ${res.status})`);
    kinds = new Map();
    for (const r of res.body.resources as { name: string; kind: string; namespaced: boolean }[]) {
      if (!r.name.includes('/')) kinds.set(r.kind, { name: r.name, namespaced: r.namespaced });
    }
    cache.set(apiVersion, kinds);
  }
  const info = kinds.get(kind);
  if (!info) throw new Error(`kind ${kind} is not served in ${apiVersion}`);
  return info;
}

/** The URL path of one object (namespaced objects without a namespace go to "default"). */
export async function objectPath(kc: KubeConfig, obj: ManifestObject, cache: DiscoveryCache): Promise<string> {
  const info = await resourceFor(kc, obj.apiVersion, obj.kind, cache);
  const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  const ns = info.namespaced ? `/namespaces/${encodeURIComponent(obj.metadata.namespace ?? 'default')}` : '';
  return `${base}${ns}/${info.name}/${encodeURIComponent(obj.metadata.name ?? '')}`;
}

/** What the server said about one applied object. */
export interface ApplyResult {
  object: string;
  ok: boolean;
  status: number;
  message: string;
}

/**
 * Server-side apply each object (like `kubectl apply --server-side`), with strict field
 * validation so unknown or duplicate fields are errors, and optionally as a dry run
 * (`dryRun: 'All'`: every admission and validation stage runs, nothing is stored).
 * One object's failure never stops the others: every result is returned.
 */
export async function applyManifests(
  kc: KubeConfig,
  objects: ManifestObject[],
  opts: { dryRun?: boolean; fieldManager?: string } = {},
): Promise<ApplyResult[]> {
  const cache: DiscoveryCache = new Map();
  const results: ApplyResult[] = [];
  for (const obj of objects) {
    const label = `${obj.kind ?? '?'} ${obj.metadata?.namespace ? obj.metadata.namespace + '/' : ''}${obj.metadata?.name ?? '?'}`;
    try {
      if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) throw new Error('needs apiVersion, kind and metadata.name');
      const query: Record<string, string> = {
        fieldManager: opts.fieldManager ?? 'ovnkube-route-e2e',
        fieldValidation: 'Strict',
        force: 'true',
      };
      if (opts.dryRun) query.dryRun = 'All';
      const res = await kubeRequest(kc, 'PATCH', await objectPath(kc, obj, cache), {
        query,
        body: obj,
        contentType: 'application/apply-patch+yaml',
      });
      const ok = res.status === 200 || res.status === 201;
      results.push({ object: label, ok, status: res.status, message: ok ? '' : (res.body?.message ?? String(res.body)) });
    } catch (e) {
      results.push({ object: label, ok: false, status: 0, message: (e as Error).message });
    }
  }
  return results;
}

/**
 * Wait until a CRD is Established and each served version answers a LIST. Established
 * alone is not enough: right after it the server still answers 429 "storage is
 * (re)initializing" until the resource's watch cache is ready.
 */
export async function waitForCRDEstablished(kc: KubeConfig, name: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let crd: any = null;
  while (Date.now() < deadline) {
    const res = await kubeRequest(kc, 'GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
    const conds = (res.body?.status?.conditions ?? []) as { type: string; status: string; message?: string }[];
    if (conds.some((c) => c.type === 'Established' && c.status === 'True')) {
      crd = res.body;
      break;
    }
    last = res.status === 200 ? JSON.stringify(conds) : `HTTP ${res.status}`;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!crd) throw new Error(`CRD ${name} not Established after ${timeoutMs / 1000} s (last: ${last})`);
  const versions = (crd.spec.versions as { name: string; served: boolean }[]).filter((v) => v.served);
  // Served both ways a client lists: a page (read from etcd) and a whole list, which the
  // API server answers from its watch cache, 429 "storage is (re)initializing" until it is built.
  const asks = versions.flatMap((v) => {
    const path = `/apis/${crd.spec.group}/${v.name}/${crd.spec.names.plural}`;
    return [
      { path, query: { limit: '1' } as Record<string, string> },
      { path, query: {} },
    ];
  });
  for (const { path, query } of asks) {
    for (;;) {
      const res = await kubeRequest(kc, 'GET', path, { query });
      if (res.status === 200) break;
      last = `GET ${path}${query.limit ? '?limit=1' : ''}: HTTP ${res.status} ${res.body?.message ?? ''}`;
      if (Date.now() > deadline) throw new Error(`CRD ${name} Established but not served after ${timeoutMs / 1000} s (last: ${last})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
