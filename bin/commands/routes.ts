import { DEFAULT_CNI_CACHE_DIR, findPodNetns, scanCniCacheDir } from '../../injector/cni-cache.js';
import { RtnlClient } from '../../injector/netlink.js';
import { DEFAULT_NETNS_DIR, isNetnsError } from '../../injector/netns.js';
import { RTPROT_OVNKUBE_ROUTE } from '../../injector/routes.js';
import { formatRouteTable4, formatRouteTable6 } from '../../injector/routes-table.js';
import type { KernelRoute } from '../../injector/netlink-codec.js';
import { InputError, parseFlags, UsageError, type Command } from '../cli.js';

const help = `Usage: ovnkube-route routes (--netns PATH | --pod NAMESPACE/NAME) [--family 4|6|all]
                            [--netns-dir DIR] [--cni-cache-dir DIR] [-o text|json]

Print a pod's routing table (main table) like "route -n", with the protocol that installed
each route and an Owner column marking the routes ovnkube-route owns (rtnetlink protocol ${RTPROT_OVNKUBE_ROUTE}).
An Attributes column (src, mtu, advmss) follows when a route has an mtu or advmss, or one of
ours has a src. Replaces the design document's execns.sh helpers; nothing is changed.

--pod finds the netns the way the node agent does: in the CNI result cache, the files whose
cniArgs name the pod (K8S_POD_NAMESPACE, K8S_POD_NAME) give its netns in
result.interfaces[].sandbox; the newest file wins if an old sandbox's files linger.

Flags:
      --netns PATH          the netns to read (e.g. /var/run/netns/cni-...)
      --pod NS/NAME         the pod whose netns to read
      --family F            4, 6 or all (default all)
      --netns-dir DIR       refuse a netns whose realpath is outside DIR (default ${DEFAULT_NETNS_DIR})
      --cni-cache-dir DIR   the CNI result cache (default ${DEFAULT_CNI_CACHE_DIR})
  -o, --output FORMAT       text (default) or json (the routes as read, one object each)
  -h, --help                show this help
`;

export const routesCommand: Command = {
  name: 'routes',
  summary: 'print a pod netns\'s routing table like route -n, marking the routes ovnkube-route owns',
  help,
  async run(argv, io) {
    const values = parseFlags(argv, {
          netns: { type: 'string' }, pod: { type: 'string' }, family: { type: 'string', default: 'all' },
          'netns-dir': { type: 'string', default: DEFAULT_NETNS_DIR }, 'cni-cache-dir': { type: 'string', default: DEFAULT_CNI_CACHE_DIR },
          output: { type: 'string', short: 'o', default: 'text' },
        });
    if ((values.netns === undefined) === (values.pod === undefined)) throw new UsageError('give exactly one of --netns PATH and --pod NAMESPACE/NAME');
    if (!['4', '6', 'all'].includes(values.family)) throw new UsageError(`--family must be 4, 6 or all, got "${values.family}"`);
    if (values.output !== 'text' && values.output !== 'json') throw new UsageError(`--output must be text or json, got "${values.output}"`);
    let path = values.netns;
    if (values.pod !== undefined) {
      const m = /^([^/\s]+)\/([^/\s]+)$/.exec(values.pod);
      if (!m) throw new UsageError(`--pod expects NAMESPACE/NAME, got "${values.pod}"`);
      const scan = await scanCniCacheDir(values['cni-cache-dir']);
      for (const err of scan.errors) if (!/not a pod's sandbox/.test(err)) io.stderr.write(`warning: ${err}\n`);
      const found = findPodNetns(scan.entries, m[1]!, m[2]!);
      if (!found) throw new InputError(`pod ${values.pod}: no CNI cache file in ${values['cni-cache-dir']} names it (${scan.entries.length} pod entries found)`);
      path = found.sandbox;
    }
    let routes: KernelRoute[];
    let client: RtnlClient;
    try {
      client = RtnlClient.open(path!, { policy: { netnsDir: values['netns-dir'] } });
    } catch (e) {
      if (isNetnsError(e)) throw new InputError(e.message);
      throw e;
    }
    try {
      routes = await client.listRoutes(values.family === 'all' ? {} : { family: Number(values.family) as 4 | 6 });
    } finally {
      client.close();
    }
    if (values.output === 'json') {
      io.stdout.write(JSON.stringify(routes.map((r) => ({ ...r, owned: r.protocol === RTPROT_OVNKUBE_ROUTE })), null, 2) + '\n');
      return 0;
    }
    const parts: string[] = [`netns ${path}\n`];
    if (values.family !== '6') parts.push(formatRouteTable4(routes, RTPROT_OVNKUBE_ROUTE));
    if (values.family !== '4') parts.push(formatRouteTable6(routes, RTPROT_OVNKUBE_ROUTE));
    io.stdout.write(parts.join('\n'));
    return 0;
  },
};
