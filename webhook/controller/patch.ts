/**
 * The controller's writes to pods, as pure functions: the JSON Patch that brings one pod's
 * plan annotation to the desired value (platform/api-errors.ts classifies a failed write).
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
  const ops = fjp.compare({ metadata: annotations ? { annotations } : {} }, { metadata: { annotations: next } });
  const guard: Operation[] = [{ op: 'test', path: '/metadata/uid', value: pod.metadata.uid }];
  if (current !== undefined)
    guard.push({ op: 'test', path: `/metadata/annotations/${PLAN_ANNOTATION.replace(/~/g, '~0').replace(/\//g, '~1')}`, value: current });
  else guard.push({ op: 'test', path: '/metadata/resourceVersion', value: pod.metadata.resourceVersion });
  return [...guard, ...ops];
}
