/**
 * Runs the webhook process from a validated WebhookConfig: loads the plan keys and the
 * serving pair, starts the informer caches, serves HTTPS, reloads the serving pair when
 * its files change, and shuts down cleanly when `signal` aborts. All I/O is set up here;
 * everything it builds takes its I/O as arguments.
 */
import { readFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { parsePlanKey, type PlanKey } from '../core/plan-codec.js';
import { buildApp } from './admission/server.js';
import { cachesFromApi, type ClusterCaches } from './caches/caches.js';
import type { WebhookConfig } from './config.js';
import { startController, type RunningController } from './controller/run.js';
import { WebhookError } from './errors.js';
import type { InformerObserver } from './caches/informer.js';
import { DEFAULT_API_TIMEOUT_MS, DEFAULT_WATCH_CONNECT_MS, DEFAULT_WATCH_IDLE_MS, progressBoundMs } from '../platform/kube-client.js';
import { createWebhookMetrics, type WebhookMetrics } from './admission/metrics.js';
import { loadServingCert, watchServingCert } from './admission/tls.js';
import { shareConnections } from '../platform/kube-connections.js';
import { createLogger } from '../platform/log.js';
import { errorMessage, withCause } from '../platform/errors.js';

/** Read the plan key files, in order (the first signs). Errors name the file. */
export async function loadPlanKeys(files: readonly string[]): Promise<PlanKey[]> {
  return Promise.all(
    files.map(async (f) => {
      let text: string;
      try {
        text = await readFile(f, 'utf8');
      } catch (e) {
        throw new WebhookError('OVNKR_ERR_PLAN_KEY', errorMessage(e), { cause: e });
      }
      try {
        return parsePlanKey(text);
      } catch (e) {
        throw new WebhookError('OVNKR_ERR_PLAN_KEY', withCause(f, e), { cause: e });
      }
    }),
  );
}

/** KubeConfig from a file, or the in-cluster service account when `file` is undefined. */
export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromCluster();
  } catch (e) {
    // The operator's to fix (a path, a mount): a message, not a stack trace.
    throw new WebhookError('OVNKR_ERR_KUBECONFIG', withCause(file ? `kubeconfig ${file}` : 'in-cluster credentials', e), { cause: e });
  }
  return kc;
}

export interface RunOptions {
  /** Aborting it stops the server (drains requests) and the informers. */
  signal: AbortSignal;
  /** Where JSON logs go. */
  logStream: NodeJS.WritableStream;
  /** Use this instead of loading config.kubeconfig / in-cluster credentials. */
  kubeConfig?: KubeConfig;
  /** Called once listening, with the bound port (useful with port 0). */
  onListening?(port: number): void;
  /** API deadlines (kube-client.ts); the defaults suit production, tests shorten them. */
  deadlines?: ApiDeadlines;
}

/** The deadlines of the process's API calls and watches, and its longest back-off. */
export interface ApiDeadlines {
  apiTimeoutMs: number;
  connectMs: number;
  idleMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_DEADLINES: ApiDeadlines = {
  apiTimeoutMs: DEFAULT_API_TIMEOUT_MS,
  connectMs: DEFAULT_WATCH_CONNECT_MS,
  idleMs: DEFAULT_WATCH_IDLE_MS,
  maxBackoffMs: 30_000,
};

/**
 * /healthz: dead when a cache's (or the controller's pod cache's) list+watch loop has made
 * no progress (list, event, bookmark, watch start, retry) for longer than any live loop can
 * go without one. Every request and watch has a deadline, so this only trips on a bug.
 */
export function liveness(
  caches: ClusterCaches,
  podsStalled: () => { ms: number; last: string } | undefined,
  boundMs: number,
): () => { alive: boolean; detail: string } {
  return () => {
    const stuck = caches.stalled(boundMs).map((s) => `${s.resource} (no progress for ${Math.round(s.ms / 1000)} s; last: ${s.last})`);
    const p = podsStalled();
    if (p && p.ms > boundMs) stuck.push(`pods (no progress for ${Math.round(p.ms / 1000)} s; last: ${p.last})`);
    return stuck.length ? { alive: false, detail: `list/watch loop stalled: ${stuck.join(', ')}` } : { alive: true, detail: 'ok' };
  };
}

function readiness(caches: ClusterCaches): () => { ready: boolean; detail: string } {
  return () => {
    const missing = Object.entries(caches.syncedByResource())
      .filter(([, ok]) => !ok)
      .map(([r]) => r);
    return missing.length
      ? { ready: false, detail: `caches not synced yet: ${missing.join(', ')}` }
      : { ready: true, detail: 'caches synced' };
  };
}

/** Run the webhook until `opts.signal` aborts. Rejects when startup fails. */
export async function runWebhook(config: WebhookConfig, opts: RunOptions): Promise<void> {
  const keys = await loadPlanKeys(config.planKeys);
  const serving = await loadServingCert(config.tlsCert, config.tlsKey);
  const kc = opts.kubeConfig ?? loadKubeConfig(config.kubeconfig);
  // One keep-alive agent for every API call and watch (client-node makes a new one per request).
  shareConnections(kc);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  let metrics: WebhookMetrics | undefined;
  const log = createLogger(opts.logStream, config.logLevel);
  // Shared with the controller's pod cache.
  const observer: InformerObserver = {
    onList: (resource, count) => {
      metrics?.observeList(resource);
      log.info({ resource, count }, 'cache listed');
    },
    onError: (resource, err, retryInMs) => {
      metrics?.observeWatchError(resource);
      log.warn({ resource, err: (err as Error)?.message ?? String(err), retryInMs }, 'cache list/watch failed; retrying');
    },
  };
  const d = opts.deadlines ?? {
    ...DEFAULT_DEADLINES,
    apiTimeoutMs: config.apiTimeoutMs,
    connectMs: Math.min(DEFAULT_WATCH_CONNECT_MS, config.apiTimeoutMs),
    idleMs: config.watchIdleMs,
  };
  const watchDeadlines = { connectMs: d.connectMs, idleMs: d.idleMs };
  const caches = cachesFromApi(kc, {
    observer,
    apiTimeoutMs: d.apiTimeoutMs,
    watchDeadlines,
    backoff: { maxMs: d.maxBackoffMs },
    report: (err, ev) => log.error({ err, resource: ev.resource, type: ev.type }, 'cache change subscriber failed'),
  });
  metrics = createWebhookMetrics(registry, caches);
  let controller: RunningController | undefined;
  const app = buildApp({
    admit: { caches, mode: config.mode, keys, trustedUsers: config.trustedUsers },
    readiness: readiness(caches),
    liveness: liveness(caches, () => controller?.podsStalled(), progressBoundMs(d)),
    registry,
    metrics,
    https: { cert: serving.cert, key: serving.key },
    logger: log,
  });
  metrics.observeCertInUse(serving.notAfter.getTime() / 1000);

  caches.start();
  void caches.synced.then(() => log.info(caches.sizes(), 'caches synced; ready'));
  let watcher: { close(): void } | undefined;
  try {
    if (config.controller.enabled) {
      controller = startController({
        kc,
        config: config.controller,
        caches,
        mode: config.mode,
        keys,
        registry,
        log,
        observer,
        apiTimeoutMs: d.apiTimeoutMs,
        watchDeadlines,
      });
      log.info(
        { identity: controller.identity, lease: `${config.controller.leaseNamespace}/${config.controller.leaseName}` },
        'controller campaigning for leadership',
      );
    }
    await app.listen({ host: config.listenAddress, port: config.port });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    log.info({ port, mode: config.mode, keyIds: keys.map((k) => k.id), certNotAfter: serving.notAfter }, 'webhook listening');
    opts.onListening?.(port);
    watcher = watchServingCert({
      server: app.server as unknown as { setSecureContext(o: object): void },
      certFile: config.tlsCert,
      keyFile: config.tlsKey,
      current: serving,
      onReload: (c) => {
        metrics!.observeCertReload(true);
        metrics!.observeCertInUse(c.notAfter.getTime() / 1000);
        log.info({ fingerprint: c.fingerprint, notAfter: c.notAfter }, 'serving certificate reloaded');
      },
      onError: (e) => {
        metrics!.observeCertReload(false);
        log.error({ err: e.message }, 'serving certificate not reloaded; keeping the previous one');
      },
    });
    if (!opts.signal.aborted) await new Promise((resolve) => opts.signal.addEventListener('abort', resolve, { once: true }));
    log.info('shutting down');
  } finally {
    watcher?.close();
    // The leader releases the Lease first, so another replica takes over while we drain.
    await controller?.stop();
    await app.close();
    await caches.stop();
  }
}
