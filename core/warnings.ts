/**
 * Warnings about Routes that are valid but probably not what the operator wants on a real
 * dual-CNI cluster (docs/routing.md, "Safe defaults"). Pure; the controller puts them in the
 * Route's status (condition Warnings) and Events, `plan` prints them.
 *
 * - DefaultRouteMovesServices: `defaultRoute` moves the pod's default route off eth0 (the
 *   interface of the cluster network, under Multus), but nothing in the Route keeps the
 *   cluster DNS Service (kube-system/kube-dns) on another device: ClusterIP and DNS traffic
 *   then follows the default to the second network, where Services are usually unreachable.
 * - GatewayNotPerNode: a rule names a literal gateway that is not link-local. On
 *   OVN-Kubernetes each node's subnet has its own gateway, so one address is right on one
 *   node only; `via: gateway` is the gateway of dev on each pod's node. (Link-local
 *   gateways such as Calico's 169.254.1.1 are the same on every node.)
 */
import { formatIP, parseCIDR, parseIP, type CIDR, type IP } from './ip.js';
import { serviceIPs } from './resolve.js';
import { GATEWAY_VIA, type Route, type Service } from './types.js';

/** Multus names the cluster (default) network's interface eth0 in every pod. */
export const CLUSTER_NETWORK_DEV = 'eth0';
/** The cluster DNS Service (CoreDNS keeps the kube-dns name). */
export const DNS_SERVICE = { namespace: 'kube-system', name: 'kube-dns' } as const;

export type WarningReason = 'DefaultRouteMovesServices' | 'GatewayNotPerNode';
export interface RouteWarning {
  reason: WarningReason;
  field: string;
  message: string;
}

const contains = (c: CIDR, ip: IP): boolean =>
  c.family === ip.family &&
  ip.value >> BigInt((c.family === 4 ? 32 : 128) - c.bits) === c.value >> BigInt((c.family === 4 ? 32 : 128) - c.bits);

function linkLocal(ip: IP): boolean {
  if (ip.family === 4) return ip.value >> 16n === 0xa9fen; // 169.254.0.0/16
  return ip.value >> 118n === 0x3fan; // fe80::/10
}

/** The warnings for `route`; `service` looks Services up (for the cluster DNS Service). */
export function routeWarnings(route: Route, service: (namespace: string, name: string) => Service | undefined): RouteWarning[] {
  const out: RouteWarning[] = [];
  const spec = route.spec ?? {};
  const d = spec.defaultRoute;
  if (d && d.dev !== CLUSTER_NETWORK_DEV) {
    const dns = service(DNS_SERVICE.namespace, DNS_SERVICE.name);
    const { ips } = serviceIPs(dns);
    const pinnedBySvc = (spec.svc ?? []).some(
      (s) => s.namespace === DNS_SERVICE.namespace && s.name === DNS_SERVICE.name && s.dev !== d.dev,
    );
    const rules = (spec.route ?? [])
      .filter((r) => r.dev !== d.dev)
      .map((r) => parseCIDR(r.dst))
      .flatMap((p) => (p.ok ? [p.value] : []));
    const unpinned = ips.filter((ip) => !rules.some((c) => contains(c, ip)));
    const dnsText = `${DNS_SERVICE.namespace}/${DNS_SERVICE.name}`;
    if (!pinnedBySvc && (ips.length === 0 || unpinned.length > 0)) {
      const what = ips.length
        ? `the cluster DNS Service ${dnsText} (${ips.map(formatIP).join(', ')}) and every other ClusterIP`
        : `ClusterIP traffic and cluster DNS (Service ${dnsText} was not found to check)`;
      out.push({
        reason: 'DefaultRouteMovesServices',
        field: 'spec.defaultRoute',
        message: `spec.defaultRoute moves the pod's default route to ${d.dev}: ${what} then leave through ${d.dev}, where Services are usually unreachable, unless the Service CIDR is pinned; add a rule such as {dst: <Service CIDR>, dev: ${CLUSTER_NETWORK_DEV}, via: gateway} to spec.route (docs/routing.md)`,
      });
    }
  }
  const literal = (via: string | undefined, dev: string, field: string): void => {
    if (via === undefined || via === GATEWAY_VIA) return;
    const p = parseIP(via);
    if (!p.ok || linkLocal(p.value)) return;
    out.push({
      reason: 'GatewayNotPerNode',
      field,
      message: `${field} ${via} is one gateway address for pods on every node, but each node's ${dev} subnet may have its own gateway (OVN-Kubernetes); use via: gateway for the gateway of ${dev} on each pod's node, or restrict the Route to the pods of one node`,
    });
  };
  (spec.route ?? []).forEach((r, i) => literal(r.via, r.dev, `spec.route[${i}].via`));
  (spec.svc ?? []).forEach((s, i) => literal(s.via, s.dev, `spec.svc[${i}].via`));
  if (d) literal(d.via, d.dev, 'spec.defaultRoute.via');
  return out;
}
