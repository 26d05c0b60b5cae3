// Kernel routes and links for the pure tests of the route engine (diff, delta, attributes):
// a pod's three links, and a main-table route on one of them as a dump would give it.
import type { KernelRoute, LinkInfo } from '../../injector/kernel/netlink-codec.js';

/** lo, eth0 and eth1, as a pod netns lists them. */
export const LINKS: LinkInfo[] = [
  { index: 1, name: 'lo', up: true },
  { index: 2, name: 'eth0', up: true },
  { index: 3, name: 'eth1', up: true },
];

/** A unicast main-table route to `dst` on `dev` (protocol boot, scope link unless via), with `o` over it. */
export const kernelRoute = (dst: string, dev: string, o: Partial<KernelRoute> = {}): KernelRoute => ({
  family: dst.includes(':') ? 6 : 4,
  dst,
  table: 254,
  protocol: 3,
  scope: o.via ? 0 : 253,
  type: 'UNICAST',
  priority: 0,
  tos: 0,
  oif: LINKS.find((l) => l.name === dev)?.index ?? 99,
  dev,
  ...o,
});
