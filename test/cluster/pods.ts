/**
 * Pods on the real node (node.ts): a pod body that the node can run with no registry, waiting
 * for it, and exec through the API server (the way a user reads a pod's routing table).
 */
import { Exec, type KubeConfig, type V1Status } from '@kubernetes/client-node';
import { writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import type { Pod } from '../../core/types.js';
import { kubeConfigWithToken } from './helpers.js';
import { NODE_IMAGE } from './image.js';
import { kubeRequest } from './k8s.js';
import { ETH1_SELECTION, NETWORKS_ANNOTATION } from './node.js';

export interface NodePodOptions {
  /** Attach eth1 (the OVN-like network) through Multus. Default true. */
  eth1?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  hostNetwork?: boolean;
  /** The container's shell script; default: sleep until TERM. */
  script?: string;
}

/** The app container's default: wait for TERM (busybox sh as PID 1 ignores it otherwise). */
export const SLEEP_SCRIPT = "trap 'exit 0' TERM; while :; do sleep 1; done";

/** A pod for the real node: the local busybox image, never pulled, no token, no cluster DNS. */
export function nodePod(name: string, node: string, o: NodePodOptions = {}): Pod {
  const annotations = { ...(o.eth1 === false || o.hostNetwork ? {} : { [NETWORKS_ANNOTATION]: ETH1_SELECTION }), ...o.annotations };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...(o.labels ? { labels: o.labels } : {}), ...(Object.keys(annotations).length ? { annotations } : {}) },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      dnsPolicy: 'Default',
      terminationGracePeriodSeconds: 2,
      ...(o.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'c', image: NODE_IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', o.script ?? SLEEP_SCRIPT] }],
    },
  };
}

/** Poll the pod until `cond` holds (returns the pod) or fail with its last status after `ms`. */
export async function waitPod(
  kc: KubeConfig,
  ns: string,
  name: string,
  what: string,
  cond: (p: Pod) => boolean,
  ms = 90_000,
): Promise<Pod> {
  const deadline = Date.now() + ms;
  let last: Pod | undefined;
  for (;;) {
    const res = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${ns}/pods/${name}`);
    if (res.status === 200) {
      last = res.body as Pod;
      if (cond(last)) return last;
    }
    if (Date.now() > deadline)
      throw new Error(
        `pod ${ns}/${name}: not ${what} after ${ms / 1000} s; status: ${JSON.stringify(last?.status ?? res.body).slice(0, 1500)}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const podRunning = (p: Pod): boolean => p.status?.phase === 'Running';

/** Wait until the pod is gone from the API (the kubelet has torn it down). */
export async function waitPodGone(kc: KubeConfig, ns: string, name: string, ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${ns}/pods/${name}`);
    if (res.status === 404) return;
    if (Date.now() > deadline) throw new Error(`pod ${ns}/${name} still there after ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

/**
 * Run `command` in a pod's container through the API server (exec over WebSocket, as kubectl
 * does) and resolve with its output and status. Rejects when no status arrives in `ms`.
 */
export async function podExec(
  kc: KubeConfig,
  ns: string,
  pod: string,
  container: string,
  command: string[],
  ms = 30_000,
): Promise<{ stdout: string; stderr: string; status: string; message?: string }> {
  const out = new Collect();
  const err = new Collect();
  let timer: NodeJS.Timeout | undefined;
  const status = await Promise.race([
    new Promise<V1Status>((resolve, reject) => {
      new Exec(kc).exec(ns, pod, container, command, out, err, null, false, resolve).then((ws) => {
        ws.on('close', () =>
          setTimeout(
            () => reject(new Error(`exec ${command.join(' ')} in ${ns}/${pod}: closed with no status; stderr: ${err.text}`)),
            2000,
          ),
        );
      }, reject);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`exec ${command.join(' ')} in ${ns}/${pod}: no status in ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
  return { stdout: out.text, stderr: err.text, status: status.status ?? '', ...(status.message ? { message: status.message } : {}) };
}

/**
 * The node agent's identity as the DaemonSet gives it: a hostNetwork pod `podName` on `node`
 * running as ServiceAccount ovnkube-route/ovnkube-route-injector, and a token bound to that
 * pod (so the agent's requests name its node), written as a kubeconfig at `path`. deploy/'s
 * injector RBAC must be applied first.
 */
export async function agentKubeconfig(
  cp: { server: string; caPem: string; kc: KubeConfig },
  node: string,
  podName: string,
  path: string,
): Promise<string> {
  const body = nodePod(podName, node, { hostNetwork: true });
  (body.spec as Record<string, unknown>).serviceAccountName = 'ovnkube-route-injector';
  const pod = await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces/ovnkube-route/pods', { body });
  if (pod.status !== 201) throw new Error(`the agent's own pod ovnkube-route/${podName}: HTTP ${pod.status}: ${pod.body?.message ?? ''}`);
  const tr = await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces/ovnkube-route/serviceaccounts/ovnkube-route-injector/token', {
    body: {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 24 * 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: podName, uid: pod.body.metadata.uid } },
    },
  });
  if (tr.status !== 201) throw new Error(`a pod-bound token for ovnkube-route-injector: HTTP ${tr.status}: ${tr.body?.message ?? ''}`);
  writeFileSync(path, kubeConfigWithToken(cp, String(tr.body.status.token)).exportConfig(), { mode: 0o600 });
  return path;
}
