/**
 * The controller's writes to pods, as pure functions: the JSON Patch that brings one pod's
 * plan annotation to the desired value, and how an API error from applying it is handled.
 *
 * The patch is fast-json-patch's `compare()` of the annotations (which escapes the `/` of
 * `routes.k8s.ovn.org/plan` as `~1`), preceded by `test` operations, so it only applies to
 * the pod it was computed for and never clobbers a concurrent change:
 * - `test /metadata/uid`: a pod deleted and re-created under the same name is not touched;
 * - the plan annotation present: `test` its current value (other annotations and fields
 *   may change meanwhile: the patch only replaces or removes this one key);
 * - absent: `test /metadata/resourceVersion`, because the patch then adds the key (or the
 *   whole annotations map), which is only safe on exactly the version we looked at.
 * A failed `test` makes the API server refuse the whole patch; the pod's next informer
 * event queues it again and it is recomputed from the newer version.
 */
import fjp, { type Operation } from 'fast-json-patch';
import { PLAN_ANNOTATION } from '../../core/types.js';
import type { CachedPod } from '../caches/pods.js';

/** The JSON Patch setting (string) or removing (undefined) the plan annotation; null when nothing changes. */
export function planPatch(pod: CachedPod, desired: string | undefined): Operation[] | null {
  const annotations = pod.metadata.annotations;
  const current = annotations?.[PLAN_ANNOTATION];
  if (current === desired) return null;
  const next: Record<string, string> = { ...annotations };
  if (desired === undefined) delete next[PLAN_ANNOTATION];
  else next[PLAN_ANNOTATION] = desired;
  const ops = fjp.compare(
    { metadata: annotations ? { annotations } : {} },
    { metadata: { annotations: next } },
  );
  const guard: Operation[] = [{ op: 'test', path: '/metadata/uid', value: pod.metadata.uid }];
  if (current !== undefined) guard.push({ op: 'test', path: `/metadata/annotations/${PLAN_ANNOTATION.replace(/~/g, '~0').replace(/\//g, '~1')}`, value: current });
  else guard.push({ op: 'test', path: '/metadata/resourceVersion', value: pod.metadata.resourceVersion });
  return [...guard, ...ops];
}

/** What to do after a failed API write, and the label it is counted under. */
export interface ApiFailure {
  /** gone: the object no longer exists (not an error); retry: try again later (with backoff). */
  action: 'gone' | 'retry';
  reason: 'not-found' | 'conflict' | 'throttled' | 'forbidden' | 'invalid' | 'server' | 'network';
  status: number;
  message: string;
}

function bodyMessage(body: unknown): string {
  if (typeof body === 'string') {
    try { return String((JSON.parse(body) as { message?: unknown }).message ?? body); } catch { return body; }
  }
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return '';
}

/**
 * The message of the API server's 422 for a JSON Patch that does not apply (a failed `test`,
 * or a path the object no longer has), with no details (checked against kube-apiserver
 * 1.36). Our patches are computed from the cached object, so either means the object
 * changed meanwhile. Schema validation failures carry their own message instead.
 */
const PATCH_NOT_APPLICABLE = 'the server rejected our request due to an error in our request';

/**
 * Classify an error from client-node (ApiException: `code` and `body`) or the network.
 * A patch that no longer applies (422, see above) and a 409 both mean "changed
 * meanwhile", i.e. a conflict.
 */
export function classifyApiError(err: unknown): ApiFailure {
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown };
  const status = typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : 0;
  const message = (bodyMessage(e?.body) || String(e?.message ?? err)).slice(0, 500);
  if (status === 404) return { action: 'gone', reason: 'not-found', status, message };
  if (status === 409 || (status === 422 && message === PATCH_NOT_APPLICABLE)) return { action: 'retry', reason: 'conflict', status, message };
  if (status === 429) return { action: 'retry', reason: 'throttled', status, message };
  if (status === 401 || status === 403) return { action: 'retry', reason: 'forbidden', status, message };
  if (status >= 400 && status < 500) return { action: 'retry', reason: 'invalid', status, message };
  if (status >= 500) return { action: 'retry', reason: 'server', status, message };
  return { action: 'retry', reason: 'network', status, message };
}
