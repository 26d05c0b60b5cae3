/**
 * runAgent: the production wiring of the node agent from a validated AgentConfig.
 *
 * Start-up order (a restart rebuilds everything from the API, the CNI cache and the state
 * dir; nothing else is needed to converge):
 *   1. key ring, metrics registry and listener (/readyz answers 503 until both lists of
 *      steps 2 and 5 are in);
 *   2. the namespace list+watch (labels only), started first so that its list runs while
 *      the CNI cache is scanned and the pods are listed: no plan is applied until it is in
 *      (fail safe, agent-namespaces.ts), so it must not add a round trip of its own;
 *   3. the CNI cache index: inotify watch first, then a full scan;
 *   4. the netns dir watch (a netns deleted or created);
 *   5. the pod list+watch of this node. Every pod listed is synced (a pod with a plan
 *      waits for step 2, then all are requeued); once the list is in, state entries of
 *      pods no longer on the node are removed.
 * Every resync period all pods are looked at again (backstop for missed events).
 * On abort: watches stop, keepers close; routes and state stay as they are.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { Server } from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { Agent } from './agent.js';
import type { AgentConfig } from './config.js';
import { KeyRing } from './keys.js';
import { kubeSink, listWatchLiveness, NamespaceSource, PodSource } from './kube.js';
import { createLogger } from '../../platform/log.js';
import { CodedError, errorMessage, withCause } from '../../platform/errors.js';
import { CniServer } from '../cni/server.js';
import { installCni, uninstallCni } from '../cni/install.js';
import { installRtProtos } from '../rt-protos.js';
import { CniCacheIndex } from '../discovery/discovery.js';
import { DirWatcher } from '../discovery/watch.js';
import { DEFAULT_WATCH_CONNECT_MS, progressBoundMs } from '../../platform/kube-client.js';
import { createAgentMetrics, serveMetrics } from '../metrics.js';
import { Reporter } from '../report/report.js';
import { AgentState } from '../routes/state.js';
import { shareConnections } from '../../platform/kube-connections.js';

export interface RunAgentOptions {
  signal: AbortSignal;
  logStream: NodeJS.WritableStream;
}

/** Error at start-up the operator has to fix (a key file, the kubeconfig, the metrics port). */
export class AgentStartError extends CodedError {
  override name = 'AgentStartError';
  constructor(message: string, cause?: unknown) {
    super('OVNKR_ERR_AGENT_START', message, { cause });
  }
}

/** Run the agent until `signal` aborts. */
export async function runAgent(config: AgentConfig, opts: RunAgentOptions): Promise<void> {
  const log = createLogger(opts.logStream, config.logLevel);
  let keys: KeyRing;
  try {
    keys = new KeyRing(config.planKeys, log);
  } catch (e) {
    throw new AgentStartError(errorMessage(e), e);
  }
  const kc = new KubeConfig();
  try {
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromCluster();
  } catch (e) {
    throw new AgentStartError(
      withCause(`cannot load ${config.kubeconfig ? `kubeconfig ${config.kubeconfig}` : 'in-cluster credentials'}`, e),
      e,
    );
  }
  // One keep-alive agent for every API call and watch (client-node makes a new one per request).
  shareConnections(kc);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = createAgentMetrics(registry);
  const policy = { netnsDir: config.netnsDir, procRoot: config.procRoot };
  const reporter = new Reporter(kubeSink(kc, config.nodeName, undefined, config.apiTimeoutMs), config.nodeName, metrics, log);
  // Every list, watch and write has a deadline; a loop silent for longer than this is dead.
  const maxBackoffMs = 30_000;
  const watchDeadlines = { connectMs: Math.min(DEFAULT_WATCH_CONNECT_MS, config.apiTimeoutMs), idleMs: config.watchIdleMs };
  const boundMs = progressBoundMs({ apiTimeoutMs: config.apiTimeoutMs, ...watchDeadlines, maxBackoffMs });
  const sourceOptions = {
    apiTimeoutMs: config.apiTimeoutMs,
    watchDeadlines,
    maxBackoffMs,
    onFailure: () => metrics.failure('api-list-watch'),
  };

  let agent: Agent | undefined;
  const index = new CniCacheIndex(config.cniCacheDir, {
    log,
    rescanMs: Math.max(config.resyncPeriodMs * 5, 60_000),
    onChange: (refs) => agent?.sandboxesChanged(refs),
    onParseError: () => metrics.failure('cni-cache-unparsable'),
    onTooLarge: () => metrics.failure('cni-cache-too-large'),
    onOverflow: () => metrics.failure('inotify-overflow'),
  });
  agent = new Agent({
    nodeName: config.nodeName,
    keys: () => keys.keys(),
    policy,
    index,
    netnsAnnotation: config.netnsAnnotation,
    state: new AgentState(config.stateDir),
    reporter,
    metrics,
    log,
    maxParallel: config.maxParallel,
    keeper: { resyncMs: config.resyncPeriodMs },
    ...(config.cni.socket ? { cni: { timeoutMs: config.cni.timeoutMs, missedDir: config.cni.missedDir } } : {}),
  });
  const a = agent;
  let podsListed = false;
  const ready = (): boolean => podsListed && a.namespacesAreSynced;
  let pods: PodSource | undefined;
  let namespaces: NamespaceSource | undefined;
  const alive = (): { alive: boolean; detail: string } =>
    listWatchLiveness(
      [pods, namespaces].filter((x) => x !== undefined),
      boundMs,
    );
  let server: Server | undefined;
  if (config.metricsAddr) {
    try {
      server = await serveMetrics(registry, config.metricsAddr, ready, alive);
    } catch (e) {
      throw new AgentStartError(withCause(`cannot listen on ${config.metricsAddr.host}:${config.metricsAddr.port} for metrics`, e), e);
    }
  }
  // Names only: a netns file is created, then mounted (no event); nothing is written to it.
  const netnsWatch = new DirWatcher(config.netnsDir, {
    log,
    content: false,
    onNames: (names) => a.netnsNamesChanged(names),
    onRewatch: () => a.resyncAll(),
    onOverflow: () => metrics.failure('inotify-overflow'),
  });
  pods = new PodSource(
    kc,
    config.nodeName,
    {
      podAdded: (p) => a.podAdded(p),
      podUpdated: (p) => a.podUpdated(p),
      podDeleted: (p) => a.podDeleted(p),
      podsSynced: () => {
        a.podsSynced();
        podsListed = true;
        log.info(
          { node: config.nodeName, pods: a.size, sandboxes: index.size, namespacesListed: a.namespacesAreSynced },
          'pods of the node listed; converging',
        );
      },
    },
    log,
    sourceOptions,
  );
  namespaces = new NamespaceSource(
    kc,
    {
      namespaceAdded: (n) => a.namespaceAdded(n),
      namespaceUpdated: (n) => a.namespaceUpdated(n),
      namespaceDeleted: (n) => a.namespaceDeleted(n),
      namespacesSynced: () => a.namespacesSynced(),
    },
    log,
    sourceOptions,
  );
  const [podSource, nsSource] = [pods, namespaces];
  log.info(
    {
      node: config.nodeName,
      keyIds: keys.ids(),
      cniCacheDir: config.cniCacheDir,
      netnsDir: config.netnsDir,
      stateDir: config.stateDir,
      netnsAnnotation: config.netnsAnnotation ?? null,
      maxParallel: config.maxParallel,
    },
    'starting',
  );
  const resync = setInterval(() => a.resyncAll(), config.resyncPeriodMs);
  // CNI-time injection: the socket first, then the plugin in the node's CNI conf (a pod
  // started meanwhile would only fail open).
  const cniServer = config.cni.socket ? new CniServer({ path: config.cni.socket, log, handle: (req) => a.cniAdd(req) }) : null;
  const cniDirs = config.cni.binDir && config.cni.confDir ? { binDir: config.cni.binDir, confDir: config.cni.confDir } : null;
  try {
    if (cniServer) {
      try {
        await cniServer.start();
      } catch (e) {
        throw new AgentStartError(withCause(`cannot serve CNI requests on ${config.cni.socket}`, e), e);
      }
      log.info({ socket: config.cni.socket, timeoutMs: config.cni.timeoutMs }, 'serving CNI ADD requests');
    }
    if (cniDirs && config.cni.socket) {
      try {
        const r = installCni({
          ...cniDirs,
          socket: config.cni.socket,
          missedDir: config.cni.missedDir,
          timeoutMs: config.cni.timeoutMs + 500,
        });
        log.info({ binDir: cniDirs.binDir, conf: r.confFile, ...(r.replaced ? { replaced: r.replaced } : {}) }, 'CNI plugin installed');
      } catch (e) {
        // Pods still start and get their routes after the fact: report, do not stop.
        metrics.failure('cni-install');
        log.error(
          { binDir: cniDirs.binDir, confDir: cniDirs.confDir, error: (e as Error).message },
          'cannot install the CNI plugin; routes follow pod start asynchronously',
        );
      }
    }
    if (config.rtProtosDir) {
      try {
        const r = installRtProtos(config.rtProtosDir);
        log.info({ file: r.file }, r.written ? 'named proto 111 for iproute2' : 'iproute2 name of proto 111 already in place');
      } catch (e) {
        // Only a name for `ip route` output: report, do not stop.
        log.warn({ dir: config.rtProtosDir, error: (e as Error).message }, 'cannot write the iproute2 name of proto 111');
      }
    }
    nsSource.start();
    await index.start();
    netnsWatch.start();
    keys.watch(Math.min(30_000, config.resyncPeriodMs), () => a.keysChanged());
    podSource.start();
    if (!opts.signal.aborted) await new Promise<void>((resolve) => opts.signal.addEventListener('abort', () => resolve(), { once: true }));
  } finally {
    log.info({ node: config.nodeName }, 'stopping; routes stay in place');
    clearInterval(resync);
    if (cniDirs) {
      try {
        uninstallCni(cniDirs);
        log.info(cniDirs, "CNI plugin taken out of the node's CNI config");
      } catch (e) {
        log.warn({ ...cniDirs, error: (e as Error).message }, 'cannot take the CNI plugin out of the CNI config (it fails open meanwhile)');
      }
    }
    await cniServer?.close();
    keys.close();
    await Promise.all([podSource.stop(), nsSource.stop()]);
    netnsWatch.close();
    index.close();
    a.stop();
    if (server) await new Promise<void>((r) => server!.close(() => r()));
  }
}
