/**
 * The injector's report on a pod, annotation `routes.k8s.ovn.org/status` (STATUS_ANNOTATION):
 *   {"v":1,"plan":"<planHash of the plan applied, or \"\" for none>","applied":5,
 *    "skipped":[{"dst":"10.86.205.109/32","dev":"eth1","reason":"missing-dev"}],"node":"node-1",
 *    "time":"2026-11-21T16:00:00.000Z"}
 * The controller counts a pod as "applied" for a Route when `plan` equals the hash of the
 * pod's current plan annotation and nothing was skipped. The report is informational (a pod
 * author can write it too); it never drives what routes are written.
 */
import type { Plan } from './types.js';
import { planHash } from './plan-codec.js';

export interface SkippedReport {
  dst: string;
  dev?: string;
  reason: string;
  detail?: string;
}

export interface InjectorStatus {
  v: 1;
  /** planHash() of the plan applied; "" when the pod has no plan (routes removed). */
  plan: string;
  /** Routes of the plan in place. */
  applied: number;
  /** Routes of the plan not in place, with why (at most MAX_SKIPPED listed). */
  skipped: SkippedReport[];
  node: string;
  time: string;
  /**
   * How the routes of the pod's current sandbox arrived, when the node runs CNI-time
   * injection: "cni" (written during CNI ADD, before any app container started), or
   * "after-start" (the pod started first: fail-open) with why.
   */
  start?: StartReport;
}

export interface StartReport {
  mode: 'cni' | 'after-start';
  reason?: string;
}

export const MAX_SKIPPED = 32;

/** Encode a report (skipped list bounded so the annotation stays small). */
export function encodeInjectorStatus(s: Omit<InjectorStatus, 'v'>): string {
  const skipped = s.skipped.slice(0, MAX_SKIPPED).map((x) => ({
    dst: x.dst,
    ...(x.dev ? { dev: x.dev } : {}),
    reason: x.reason,
    ...(x.detail ? { detail: x.detail.slice(0, 200) } : {}),
  }));
  const start = s.start ? { mode: s.start.mode, ...(s.start.reason ? { reason: s.start.reason.slice(0, 200) } : {}) } : undefined;
  return JSON.stringify({ v: 1, plan: s.plan, applied: s.applied, skipped, ...(start ? { start } : {}), node: s.node, time: s.time });
}

/** Decode a report; undefined when absent or malformed (it is only informational). */
export function decodeInjectorStatus(value: string | undefined): InjectorStatus | undefined {
  if (!value) return undefined;
  try {
    const o = JSON.parse(value) as Partial<InjectorStatus>;
    if (o.v !== 1 || typeof o.plan !== 'string' || typeof o.applied !== 'number' || !Array.isArray(o.skipped)) return undefined;
    const st = o.start as Partial<StartReport> | undefined;
    const start =
      st && (st.mode === 'cni' || st.mode === 'after-start')
        ? { mode: st.mode, ...(typeof st.reason === 'string' ? { reason: st.reason } : {}) }
        : undefined;
    return {
      v: 1,
      plan: o.plan,
      applied: o.applied,
      skipped: o.skipped as SkippedReport[],
      ...(start ? { start } : {}),
      node: String(o.node ?? ''),
      time: String(o.time ?? ''),
    };
  } catch {
    return undefined;
  }
}

/** Whether a report says `plan` is fully in place. */
export function reportsApplied(status: InjectorStatus | undefined, plan: Plan): boolean {
  return !!status && status.plan === planHash(plan) && status.skipped.length === 0;
}
