/**
 * Talking to a live cluster from the CLI, the way kubectl does: --kubeconfig FILE (else
 * $KUBECONFIG, a colon-separated list, else ~/.kube/config, else the in-cluster service
 * account), --context NAME, -n/--namespace NS (else the context's namespace, else
 * "default"). Every failure is an InputError whose message names the kubeconfig, the
 * server or the object and what went wrong; nothing here prints a stack trace.
 */
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
// Types only: the client is imported when a live command runs (offline commands never load it).
import type { KubeConfig, V1Status } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, ROUTE_PLURAL, type KubeObject, type Pod } from '../core/types.js';
import { InputError, UsageError } from './cli.js';

export { KUBE_FLAGS, KUBE_FLAGS_HELP, type KubeFlags } from './kube-flags.js';
import type { KubeFlags } from './kube-flags.js';

/** An answer of the API server that is not 2xx. */
export class ApiError extends InputError {
  constructor(
    readonly status: number,
    readonly what: string,
    readonly reason: string,
  ) {
    super(`${what}: ${reason}`);
  }
}

export interface Cluster {
  kc: KubeConfig;
  /** Where the configuration came from, for messages. */
  source: string;
  server: string;
  context: string;
  /** The namespace for a bare pod name. */
  namespace: string;
}

/** Load the kubeconfig as kubectl would; an InputError names what is missing or broken. */
export async function loadCluster(f: KubeFlags, env: NodeJS.ProcessEnv = process.env): Promise<Cluster> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  let source: string;
  try {
    if (f.kubeconfig !== undefined) {
      if (!existsSync(f.kubeconfig)) throw new InputError(`--kubeconfig ${f.kubeconfig}: no such file`);
      source = f.kubeconfig;
      kc.loadFromFile(f.kubeconfig);
    } else if (env.KUBECONFIG) {
      const files = env.KUBECONFIG.split(':').filter((p) => p && existsSync(p));
      if (files.length === 0) throw new InputError(`KUBECONFIG=${env.KUBECONFIG}: none of its files exists`);
      source = `KUBECONFIG=${env.KUBECONFIG}`;
      kc.loadFromFile(files[0]!);
      for (const more of files.slice(1)) {
        const other = new KubeConfig();
        other.loadFromFile(more);
        kc.mergeConfig(other, true);
      }
    } else if (existsSync(join(homedir(), '.kube', 'config'))) {
      source = join(homedir(), '.kube', 'config');
      kc.loadFromFile(source);
    } else if (env.KUBERNETES_SERVICE_HOST && existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) {
      source = 'in-cluster service account';
      kc.loadFromCluster();
    } else {
      throw new InputError('no kubeconfig: give --kubeconfig FILE, or set KUBECONFIG, or create ~/.kube/config');
    }
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(
      `kubeconfig ${f.kubeconfig ?? env.KUBECONFIG ?? '~/.kube/config'}: cannot load: ${String((e as Error).message).split('\n')[0]}`,
    );
  }
  if (f.context !== undefined) {
    if (!kc.getContextObject(f.context)) {
      throw new InputError(
        `--context ${f.context}: no such context in ${source} (contexts: ${
          kc
            .getContexts()
            .map((c) => c.name)
            .join(', ') || 'none'
        })`,
      );
    }
    kc.setCurrentContext(f.context);
  }
  const ctx = kc.getContextObject(kc.getCurrentContext());
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new InputError(`${source}: context "${kc.getCurrentContext()}" names no cluster`);
  return { kc, source, server: cluster.server, context: kc.getCurrentContext(), namespace: f.namespace ?? ctx?.namespace ?? 'default' };
}

/** NS/NAME, or NAME in the flags' namespace. */
export function podRefOf(ref: string, c: Pick<Cluster, 'namespace'>, flag = '--pod'): { namespace: string; name: string } {
  const m = /^(?:([^/\s]+)\/)?([^/\s]+)$/.exec(ref);
  if (!m) throw new UsageError(`${flag} expects NAMESPACE/NAME or NAME, got "${ref}"`);
  return { namespace: m[1] ?? c.namespace, name: m[2]! };
}

/** One GET to the API server; resolves with the parsed body, or undefined on 404 when `allow404`. */
export async function getJSON<T = unknown>(
  c: Cluster,
  path: string,
  what: string,
  opts: { allow404?: boolean; timeoutMs?: number } = {},
): Promise<T | undefined> {
  const url = new URL(c.server.replace(/\/$/, '') + path);
  const req: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
  try {
    await c.kc.applyToHTTPSOptions(req);
  } catch (e) {
    throw new InputError(`${c.source}: cannot use the credentials of context "${c.context}": ${(e as Error).message}`);
  }
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const lib = url.protocol === 'http:' ? http : https;
    const r = lib.request(url, { ...req, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    r.on('timeout', () => r.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    r.on('error', reject);
    r.end();
  }).catch((e: NodeJS.ErrnoException) => {
    const why = e.code && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message;
    throw new InputError(`cannot reach the API server ${c.server} (context "${c.context}" of ${c.source}): ${why}`);
  });
  if (res.status === 404 && opts.allow404) return undefined;
  if (res.status < 200 || res.status >= 300) {
    let msg = res.text.slice(0, 300);
    try {
      msg = (JSON.parse(res.text) as { message?: string }).message ?? msg;
    } catch {
      /* not a Status */
    }
    const why =
      res.status === 401
        ? `unauthorized (HTTP 401): the credentials of context "${c.context}" were refused`
        : res.status === 403
          ? `forbidden (HTTP 403): ${msg}`
          : res.status === 404
            ? `not found (HTTP 404)`
            : `HTTP ${res.status}: ${msg}`;
    throw new ApiError(res.status, what, why);
  }
  try {
    return JSON.parse(res.text) as T;
  } catch {
    throw new InputError(`${what}: the API server answered with something that is not JSON`);
  }
}

/** GET a list; items carry their kind (lists from the API server leave it out). */
export async function listJSON<T extends KubeObject>(c: Cluster, path: string, kind: string, what: string): Promise<T[]> {
  const l = await getJSON<{ items?: T[] }>(c, path, what);
  return (l?.items ?? []).map((i) => ({ ...i, kind, apiVersion: i.apiVersion }));
}

export const routesPath = `/apis/${API_GROUP}/${API_VERSION}/${ROUTE_PLURAL}`;

/** The pod, or an InputError saying it does not exist. */
export async function getPod(c: Cluster, ns: string, name: string): Promise<Pod> {
  const p = await getJSON<Pod>(c, `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}`, `pod ${ns}/${name}`, {
    allow404: true,
  });
  if (!p) throw new InputError(`pod ${ns}/${name}: not found (context "${c.context}", server ${c.server})`);
  return { ...p, kind: 'Pod' };
}

/** Owner kinds and their API paths (for owner chains). */
const OWNER_PATHS: Record<string, string> = {
  ReplicaSet: '/apis/apps/v1/namespaces/%s/replicasets/%n',
  Deployment: '/apis/apps/v1/namespaces/%s/deployments/%n',
  StatefulSet: '/apis/apps/v1/namespaces/%s/statefulsets/%n',
  DaemonSet: '/apis/apps/v1/namespaces/%s/daemonsets/%n',
  Job: '/apis/batch/v1/namespaces/%s/jobs/%n',
  CronJob: '/apis/batch/v1/namespaces/%s/cronjobs/%n',
};

/** Fetch the owner chain's objects of a pod (as far as they exist and can be read). */
export async function fetchOwners(c: Cluster, pod: Pod, warn: (m: string) => void): Promise<KubeObject[]> {
  const ns = pod.metadata?.namespace ?? '';
  const out: KubeObject[] = [];
  let refs = pod.metadata?.ownerReferences ?? [];
  for (let depth = 0; depth < 8; depth++) {
    const ref = refs.find((r) => r.controller) ?? refs[0];
    if (!ref) break;
    const tmpl = OWNER_PATHS[ref.kind];
    if (!tmpl) break;
    let obj: KubeObject | undefined;
    try {
      obj = await getJSON<KubeObject>(
        c,
        tmpl.replace('%s', encodeURIComponent(ns)).replace('%n', encodeURIComponent(ref.name)),
        `${ref.kind} ${ns}/${ref.name}`,
        { allow404: true },
      );
    } catch (e) {
      warn(`cannot read the pod's owner ${ref.kind} ${ns}/${ref.name}: ${(e as Error).message}`);
      break;
    }
    if (!obj) break;
    out.push({ ...obj, kind: ref.kind });
    refs = obj.metadata?.ownerReferences ?? [];
  }
  return out;
}

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  status: string;
  message?: string;
}

/**
 * Run `command` in a container of the pod through the API server (the exec subresource over
 * WebSocket, as kubectl exec does). Rejects with an InputError when the server refuses (RBAC:
 * pods/exec create) or no status arrives within `ms`.
 */
export async function podExec(c: Cluster, ns: string, pod: string, container: string, command: string[], ms = 20_000): Promise<ExecResult> {
  const out = new Collect();
  const err = new Collect();
  let timer: NodeJS.Timeout | undefined;
  const what = `exec ${command.join(' ')} in pod ${ns}/${pod} (container ${container})`;
  const { Exec } = await import('@kubernetes/client-node');
  try {
    const status = await Promise.race([
      new Promise<V1Status>((resolve, reject) => {
        new Exec(c.kc).exec(ns, pod, container, command, out, err, null, false, resolve).then((ws) => {
          ws.on('close', () => setTimeout(() => reject(new Error(`closed with no status; stderr: ${err.text.trim()}`)), 1000));
        }, reject);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
      }),
    ]);
    return { stdout: out.text, stderr: err.text, status: status.status ?? '', ...(status.message ? { message: status.message } : {}) };
  } catch (e) {
    const m = (e as Error).message ?? String(e);
    const code = /\b(40[0-9])\b/.exec(m)?.[1];
    throw new ApiError(
      code ? Number(code) : 0,
      what,
      code === '403' ? `forbidden (HTTP 403): exec needs "create pods/exec" in namespace ${ns}` : m,
    );
  } finally {
    clearTimeout(timer);
  }
}
