/**
 * The parts of the `netlink` package the injector uses (rtnetlink sockets, rt message structs,
 * request flags), loaded without the package's index: that one also loads the nl80211, genl
 * and WireGuard families (nl80211's structs alone are 236 KB), which the CLI's `inject` and
 * `routes` and the agent would pay for at every start. Types still come from the package.
 */
import { createRequire } from 'node:module';
import type * as Netlink from 'netlink';

const require = createRequire(import.meta.url);

export const { createRtNetlink } = require('netlink/dist/rt/rt.js') as Pick<typeof Netlink, 'createRtNetlink'>;
export const rt = require('netlink/dist/rt/structs.js') as typeof Netlink.rt;
export const { FlagsNew } = require('netlink/dist/constants.js') as Pick<typeof Netlink, 'FlagsNew'>;
/** The package's attribute writer, for its message formatters (rt.format*Message). */
export const { AttrStream } = require('netlink/dist/structs.js') as Pick<typeof Netlink, 'AttrStream'>;
