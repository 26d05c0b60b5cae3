/** Shared fixtures and helpers of the webhook tests (compiled to dist/test/webhook). */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import fjp from 'fast-json-patch';
import { parseAllDocuments } from 'yaml';
import { planKeyFromSecret, type PlanKey } from '../../core/plan-codec.js';
import type { KubeObject, Namespace, Pod, Route, Service } from '../../core/types.js';
import { cachesFromObjects, type CacheObjects } from '../../webhook/caches/caches.js';
import type { AdmissionResponse, AdmissionReview, ValidReview } from '../../webhook/admission/review.js';
import type { ControllerMetrics } from '../../webhook/controller/metrics.js';
import { repoRoot } from '../util/fixtures.js';

export const webhookFixture = (name: string): string => resolve(repoRoot, 'test', 'webhook', 'fixtures', name);
export const genScript = resolve(repoRoot, 'certs', 'gen.sh');

/** The objects of fixtures/cluster.yaml, sorted into what the caches hold. */
export function clusterObjects(): Required<CacheObjects> {
  const docs = parseAllDocuments(readFileSync(webhookFixture('cluster.yaml'), 'utf8')).map((d) => d.toJS() as KubeObject);
  const of = <T>(kind: string) => docs.filter((d) => d.kind === kind) as T[];
  return {
    routes: of<Route>('Route'),
    namespaces: of<Namespace>('Namespace'),
    services: of<Service>('Service'),
    replicaSets: of<KubeObject>('ReplicaSet'),
    jobs: of<KubeObject>('Job'),
  };
}

/** Synced caches over fixtures/cluster.yaml, optionally with more objects. */
export function clusterCaches(extra: CacheObjects = {}): ReturnType<typeof cachesFromObjects> {
  const base = clusterObjects();
  return cachesFromObjects({
    routes: [...base.routes, ...(extra.routes ?? [])],
    namespaces: [...base.namespaces, ...(extra.namespaces ?? [])],
    services: [...base.services, ...(extra.services ?? [])],
    replicaSets: [...base.replicaSets, ...(extra.replicaSets ?? [])],
    jobs: [...base.jobs, ...(extra.jobs ?? [])],
  });
}

/** A fresh random plan key (tests never share keys with anything). */
export function testKey(): PlanKey {
  return planKeyFromSecret(randomBytes(32));
}

/** A deep copy of a fixture AdmissionReview. */
export function loadReview(name: string): ValidReview {
  return JSON.parse(readFileSync(webhookFixture(name), 'utf8')) as ValidReview;
}

/** The fixture review with its pod (and, for UPDATE, old pod) changed by `edit`. */
export function reviewWith(name: string, edit: (pod: Pod, review: ValidReview) => void, editOld?: (old: Pod) => void): ValidReview {
  const r = loadReview(name);
  edit(r.request.object as Pod, r);
  if (editOld && r.request.oldObject) editOld(r.request.oldObject as Pod);
  return r;
}

/** Set (or, with undefined, delete) an annotation on a pod in place. */
export function annotate(pod: Pod, key: string, value: string | undefined): void {
  pod.metadata ??= {};
  pod.metadata.annotations ??= {};
  if (value === undefined) delete pod.metadata.annotations[key];
  else pod.metadata.annotations[key] = value;
}

/** The JSON Patch operations of a response (empty when it carries none). */
export function patchOps(res: AdmissionResponse | undefined): fjp.Operation[] {
  if (!res?.patch) return [];
  return JSON.parse(Buffer.from(res.patch, 'base64').toString('utf8')) as fjp.Operation[];
}

/** Apply a response's patch to a copy of `pod`, validating every operation (RFC 6902). */
export function applyResponse(pod: unknown, review: AdmissionReview): Pod {
  const doc = structuredClone(pod) as Pod;
  const ops = patchOps(review.response);
  if (ops.length === 0) return doc;
  return fjp.applyPatch(doc, ops, true, false).newDocument;
}

const run = promisify(execFile);

/** Run certs/gen.sh into `dir` with extra flags; resolves with stdout and stderr. */
export async function genCerts(dir: string, flags: string[] = []): Promise<{ stdout: string; stderr: string }> {
  return run(genScript, [dir, ...flags], { timeout: 60_000 });
}

/** Controller metrics that record only the reasons of failed patches (into `failures`). */
export function failureMetrics(failures: string[]): ControllerMetrics {
  return {
    observePatchFailure: (r: string) => failures.push(r),
    observeReconcile: () => {},
    observePatched: () => {},
    observeStatusWrite: () => {},
    observeEvent: () => {},
    observeLeadership: () => {},
  };
}

/**
 * Controller options of the unit tests that build a Controller directly: the default mode, no
 * resync, no periodic status flush, and limits far above what a test sends.
 */
export const TEST_CONTROLLER = {
  mode: 'default',
  identity: 'test',
  patchQps: 1000,
  patchBurst: 1000,
  resyncPeriodMs: 0,
  statusDelayMs: 3_600_000,
} as const;

/** `n` pods p0, p1... of namespace `a`, UID their index (the controller tests' world). */
export function numberedPods(n: number): Pod[] {
  return Array.from({ length: n }, (_, i) => ({
    metadata: { namespace: 'a', name: `p${i}`, uid: String(i), resourceVersion: '1' },
    spec: {},
  }));
}
