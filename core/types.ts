/**
 * Shared types of ovnkube-route. Kubernetes objects are described structurally (the subset
 * we read), so core/ never depends on a client library and accepts both plain JSON from
 * `kubectl get -o yaml` and the objects @kubernetes/client-node returns.
 */

/** Pod/namespace label that opts in or out: `enabled` or `disabled`. */
export const INJECT_LABEL = 'routes.k8s.ovn.org/inject';
/** Pod annotation holding the signed route plan (core/plan-codec.ts). */
export const PLAN_ANNOTATION = 'routes.k8s.ovn.org/plan';
/** Pod annotation where the injector reports what it applied (hash + skipped items). */
export const STATUS_ANNOTATION = 'routes.k8s.ovn.org/status';
/** Pod label asking the webhook for the `routes.k8s.ovn.org/ready` readiness gate. */
export const READINESS_GATE_LABEL = 'routes.k8s.ovn.org/readiness-gate';
/** Pod condition type the injector sets once the plan's routes are in place. */
export const READY_CONDITION = 'routes.k8s.ovn.org/ready';
export const API_GROUP = 'k8s.ovn.org';
export const API_VERSION = 'v1';
export const ROUTE_PLURAL = 'routes';

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  generation?: number;
  resourceVersion?: string;
  deletionTimestamp?: string;
}

export interface OwnerReference {
  apiVersion?: string;
  kind: string;
  name: string;
  uid?: string;
  controller?: boolean;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface Pod extends KubeObject {
  spec?: { hostNetwork?: boolean; nodeName?: string; [k: string]: unknown };
  status?: {
    phase?: string;
    conditions?: Array<{ type: string; status: string; [k: string]: unknown }>;
    containerStatuses?: unknown[];
    [k: string]: unknown;
  };
}

export interface Namespace extends KubeObject {}

export interface Service extends KubeObject {
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    ipFamilies?: string[];
    externalName?: string;
    [k: string]: unknown;
  };
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export type OwnerKind = 'Deployment' | 'DaemonSet' | 'StatefulSet' | 'ReplicaSet' | 'Job' | 'CronJob';

export interface OwnerSelector {
  kind: OwnerKind;
  namespace?: string;
  name: string;
}

/** One entry of include/exclude: matches when every given field matches. */
export interface PodSelectorTerm {
  namespaces?: string[];
  namespaceSelector?: LabelSelector;
  pods?: string[];
  podSelector?: LabelSelector;
  owners?: OwnerSelector[];
}

/**
 * Attributes a rule may set on the routes it makes (docs/routing.md): the metric
 * (RTA_PRIORITY), the path MTU and TCP advertised MSS (RTA_METRICS RTAX_MTU/RTAX_ADVMSS) and
 * the preferred source address (RTA_PREFSRC). Absent means "not set": no MTU/ADVMSS/PREFSRC
 * attribute, and any metric (an existing route's metric is kept, a new one gets the kernel's).
 */
export interface RouteAttrs {
  src?: string;
  metric?: number;
  mtu?: number;
  advmss?: number;
}
/**
 * The `via` keyword for "the gateway of this rule's dev on each pod" (docs/routing.md): the
 * plan carries it as is and the node agent resolves it in the pod's netns, since on
 * OVN-Kubernetes every node's subnet has its own gateway.
 */
export const GATEWAY_VIA = 'gateway';

/** Attribute names in their canonical (plan) order. */
export const ROUTE_ATTR_KEYS = ['src', 'metric', 'mtu', 'advmss'] as const;

export interface CidrRule extends RouteAttrs {
  dst: string;
  dev: string;
  via?: string;
}
export interface SvcRule extends RouteAttrs {
  namespace: string;
  name: string;
  dev: string;
  via?: string;
}
export interface DefaultRouteRule extends RouteAttrs {
  dev: string;
  via?: string;
}

export interface RouteSpec {
  route?: CidrRule[];
  svc?: SvcRule[];
  defaultRoute?: DefaultRouteRule;
  include?: PodSelectorTerm[];
  exclude?: PodSelectorTerm[];
  priority?: number;
  /**
   * Devices whose traffic is answered through themselves (docs/routing.md): a routing table
   * per device plus `ip rule from <its addresses> lookup <table>`, written by the node agent.
   */
  symmetric?: string[];
  feature_gate?: Record<string, string>;
}

export interface RouteCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface RouteStatus {
  status?: string;
  conditions?: RouteCondition[];
  observedGeneration?: number;
  matchedPods?: number;
  appliedPods?: number;
  unresolvedServices?: { namespace: string; name: string; reason: string }[];
  conflicts?: { dst: string; route: string; winner: string; message: string }[];
}

/** The Route custom resource (cluster-scoped). */
export interface Route extends KubeObject {
  spec?: RouteSpec;
  status?: RouteStatus;
}

/** One route of a plan: dst is a canonical CIDR; no `via` means a link-scope route on dev. */
export interface PlanRoute extends RouteAttrs {
  dst: string;
  dev: string;
  via?: string;
}

/** The plan the webhook/controller resolve for a pod and the injector applies. */
export interface Plan {
  /** Format version; see PLAN_VERSION in core/plan-codec.ts. */
  v: 1;
  /** Sorted by (family, dst); deterministic. */
  routes: PlanRoute[];
  /** Present only when the pod's default route is to be replaced. */
  default?: PlanDefault;
  /**
   * Devices with symmetric return paths (a table per device and `ip rule from` its
   * addresses), sorted, no duplicates. Absent when no Route asks for any: such a plan
   * encodes byte-identically to a plan from before the field existed.
   */
  symmetric?: string[];
}

/** The plan's default route: dev, optional gateway and attributes. */
export interface PlanDefault extends RouteAttrs {
  dev: string;
  via?: string;
}

/** A workload object a pod belongs to, direct owner first. */
export interface OwnerRef {
  kind: string;
  namespace: string;
  name: string;
}
