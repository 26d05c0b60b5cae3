/**
 * Connection reuse for @kubernetes/client-node. Version 1.4 builds a new https.Agent for every
 * request (KubeConfig.createAgent, called from applySecurityAuthentication for API calls and
 * from applyToHTTPSOptions for watches), and a new agent has no free socket: every API call
 * was a new TCP + TLS handshake (26% of the controller's busy CPU went to new TLS connections).
 *
 * shareConnections(kc) makes createAgent return one keep-alive agent per distinct set of
 * options (server, proxy, TLS material): the TLS material is read from the kubeconfig on every
 * request, so rotated client certificates still get an agent of their own.
 *
 * In platform/ because both the webhook process and the node agent use it. It does no I/O
 * itself (it wraps the KubeConfig's own agent factory) and is typed structurally.
 */

/** A client-node KubeConfig, as far as this module is concerned. */
type KubeConfig = object;
/** An http(s).Agent, as far as this module is concerned. */
type Agent = object;
import { createHash } from 'node:crypto';

interface ClusterLike {
  server?: string;
  proxyUrl?: string;
  skipTLSVerify?: boolean;
  tlsServerName?: string;
}
type CreateAgent = (cluster: ClusterLike | null, options: Record<string, unknown>) => Agent;

/** What shareConnections installed: how many agents it made (tests, diagnostics). */
export interface SharedConnections {
  readonly agents: number;
}

const shared = new WeakMap<KubeConfig, SharedConnections>();

/** Keep at most this many agents (older ones are dropped from the cache, not destroyed: a watch may still use one). */
const MAX_AGENTS = 8;

function keyOf(cluster: ClusterLike | null, options: Record<string, unknown>): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([cluster?.server, cluster?.proxyUrl, cluster?.skipTLSVerify, cluster?.tlsServerName]));
  for (const k of Object.keys(options).sort()) {
    const v = options[k];
    if (v === undefined) continue;
    h.update(`\0${k}=`);
    h.update(Buffer.isBuffer(v) ? v : typeof v === 'string' ? v : (JSON.stringify(v) ?? ''));
  }
  return h.digest('hex');
}

/** Make every request of `kc` (API calls and watches) reuse keep-alive connections. Idempotent. */
export function shareConnections(kc: KubeConfig): SharedConnections {
  const had = shared.get(kc);
  if (had) return had;
  const target = kc as unknown as { createAgent: CreateAgent };
  if (typeof target.createAgent !== 'function')
    throw new Error('@kubernetes/client-node: KubeConfig.createAgent is gone; update core/kube-connections.ts');
  const original = target.createAgent.bind(kc);
  const agents = new Map<string, Agent>();
  let made = 0;
  target.createAgent = (cluster, options) => {
    const key = keyOf(cluster, options);
    let agent = agents.get(key);
    if (!agent) {
      agent = original(cluster, { ...options, keepAlive: true });
      made++;
      agents.set(key, agent);
      if (agents.size > MAX_AGENTS) agents.delete(agents.keys().next().value!);
    }
    return agent;
  };
  const info: SharedConnections = {
    get agents() {
      return made;
    },
  };
  shared.set(kc, info);
  return info;
}
