import { KubeConfig } from '@kubernetes/client-node';
import type { ControlPlane } from './controlplane.js';
import { kubeRequest } from './k8s.js';

export { until } from '../util/until.js';

/** A KubeConfig for the control plane that authenticates with a bearer token (or as nobody). */
export function kubeConfigWithToken(cp: Pick<ControlPlane, 'server' | 'caPem'>, token?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'cp', server: cp.server, caData: Buffer.from(cp.caPem).toString('base64') }],
    users: [token === undefined ? { name: 'anonymous' } : { name: 'token', token }],
    contexts: [{ name: 'cp', cluster: 'cp', user: token === undefined ? 'anonymous' : 'token' }],
    currentContext: 'cp',
  });
  return kc;
}

/**
 * A KubeConfig acting as ServiceAccount namespace/name, with a token from the TokenRequest
 * API (signed by the control plane's service-account key), so RBAC is checked exactly as for
 * a pod running under that account. The ServiceAccount must exist.
 */
export async function serviceAccountKubeConfig(
  cp: Pick<ControlPlane, 'server' | 'caPem' | 'kc'>,
  namespace: string,
  name: string,
  expirationSeconds = 3600,
): Promise<KubeConfig> {
  const res = await kubeRequest(cp.kc, 'POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
  });
  if (res.status !== 201)
    throw new Error(`TokenRequest for ServiceAccount ${namespace}/${name}: HTTP ${res.status}: ${res.body?.message ?? ''}`);
  return kubeConfigWithToken(cp, String(res.body.status.token));
}
