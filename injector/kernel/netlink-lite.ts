/**
 * The parts of the `netlink` package the injector uses: its rtnetlink message structs
 * (formatters and parsers), request flags and attribute writer, loaded without the package's
 * index: that one also loads the nl80211, genl and WireGuard families (nl80211's structs alone
 * are 236 KB), which the CLI's `inject` and `routes` and the agent would pay for at every
 * start. The package's sockets are not used by the injector (its request and event sockets are
 * the native addon's, netlink.ts and netlink-events.ts): createRtNetlink, for tests and the
 * benchmarks' floor, loads them (and the package's native binding) on first call only.
 * Types still come from the package.
 */
import { createRequire } from 'node:module';
import type * as Netlink from 'netlink';

const require = createRequire(import.meta.url);

export const rt = require('netlink/dist/rt/structs.js') as typeof Netlink.rt;
export const { FlagsNew } = require('netlink/dist/constants.js') as Pick<typeof Netlink, 'FlagsNew'>;
/** The package's attribute writer, for its message formatters (rt.format*Message). */
export const { AttrStream } = require('netlink/dist/structs.js') as Pick<typeof Netlink, 'AttrStream'>;

/** A socket of the `netlink` package in the caller's netns (tests, the benchmarks' floor). */
export function createRtNetlink(...args: Parameters<typeof Netlink.createRtNetlink>): Netlink.RtNetlinkSocket {
  return (require('netlink/dist/rt/rt.js') as Pick<typeof Netlink, 'createRtNetlink'>).createRtNetlink(...args);
}
