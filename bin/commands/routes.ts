import { DEFAULT_CNI_CACHE_DIR, findPodNetns, scanCniCacheDir } from '../../injector/discovery/cni-cache.js';
import { RtnlClient } from '../../injector/kernel/netlink.js';
import { DEFAULT_NETNS_DIR, isNetnsError } from '../../injector/kernel/netns.js';
import { RTPROT_OVNKUBE_ROUTE } from '../../injector/routes/engine.js';
import { formatRouteTable4, formatRouteTable6 } from '../../injector/routes/table.js';
import type { KernelRoute, KernelRule } from '../../injector/kernel/netlink-codec.js';
import { InputError, parseFlags, UsageError, type Command } from '../cli.js';
import { KUBE_FLAGS, KUBE_FLAGS_HELP } from '../kube-flags.js';

const help = `Usage: ovnkube-route routes (--netns PATH | --pod NAMESPACE/NAME) [--family 4|6|all]
                            [--netns-dir DIR] [--cni-cache-dir DIR] [-o text|json]
       ovnkube-route routes --pod REF --remote|--kubeconfig FILE|--context NAME [-n NS]
                            [--container NAME] [--from auto|exec|report] [--family 4|6|all] [-o text|json]

Print a pod's routing table (main table) like "route -n", with the protocol that installed
each route and an Owner column marking the routes ovnkube-route owns (rtnetlink protocol ${RTPROT_OVNKUBE_ROUTE}).
An Attributes column (src, mtu, advmss) follows when a route has an mtu or advmss, or one of
ours has a src. On the node (--netns/--pod, text output), a pod with symmetric return paths also gets their
"ip rule"s and the routes of their tables, after the tables.
Replaces the design document's execns.sh helpers; nothing is changed.

--pod finds the netns the way the node agent does: in the CNI result cache, the files whose
cniArgs name the pod (K8S_POD_NAMESPACE, K8S_POD_NAME) give its netns in
result.interfaces[].sandbox; the newest file wins if an old sandbox's files linger.

From a laptop (--remote, or any of --kubeconfig, --context, -n, --from, --container): through
the API server, as kubectl would. --from exec runs "ip route" in the pod's container (else
"cat /proc/net/route" and /proc/net/ipv6_route, which do not say who installed a route:
Proto "?") and needs "create pods/exec"; --from report lists the routes of ovnkube-route the
node agent reports in force (the pod's plan less what its report says was skipped: not the
whole table); auto (the default) tries exec, then the report, and says which it used.

Flags:
      --netns PATH          the netns to read (e.g. /var/run/netns/cni-...)
      --pod NS/NAME         the pod whose netns to read
      --family F            4, 6 or all (default all)
      --netns-dir DIR       refuse a netns whose realpath is outside DIR (default ${DEFAULT_NETNS_DIR})
      --cni-cache-dir DIR   the CNI result cache (default ${DEFAULT_CNI_CACHE_DIR})
  -o, --output FORMAT       text (default) or json (the routes as read, one object each)
      --remote              read the pod's table through the API server (kubeconfig as kubectl finds it)
${KUBE_FLAGS_HELP}
      --container NAME      the container to exec in (default: the pod's first)
      --from WAY            auto (default), exec or report
  -h, --help                show this help
`;

export const routesCommand: Command = {
  name: 'routes',
  summary: "print a pod netns's routing table like route -n, marking the routes ovnkube-route owns",
  help,
  async run(argv, io) {
    const values = parseFlags(argv, {
      netns: { type: 'string' },
      pod: { type: 'string' },
      family: { type: 'string', default: 'all' },
      'netns-dir': { type: 'string', default: DEFAULT_NETNS_DIR },
      'cni-cache-dir': { type: 'string', default: DEFAULT_CNI_CACHE_DIR },
      output: { type: 'string', short: 'o', default: 'text' },
      remote: { type: 'boolean', default: false },
      container: { type: 'string' },
      from: { type: 'string' },
      ...KUBE_FLAGS,
    });
    const remote =
      values.remote ||
      values.kubeconfig !== undefined ||
      values.context !== undefined ||
      values.namespace !== undefined ||
      values.from !== undefined ||
      values.container !== undefined;
    if ((values.netns === undefined) === (values.pod === undefined))
      throw new UsageError('give exactly one of --netns PATH and --pod NAMESPACE/NAME');
    if (!['4', '6', 'all'].includes(values.family)) throw new UsageError(`--family must be 4, 6 or all, got "${values.family}"`);
    if (values.output !== 'text' && values.output !== 'json') throw new UsageError(`--output must be text or json, got "${values.output}"`);
    if (remote) {
      if (values.pod === undefined)
        throw new UsageError('reading through the API server needs --pod NAMESPACE/NAME (--netns is for the node)');
      const from = values.from ?? 'auto';
      if (from !== 'auto' && from !== 'exec' && from !== 'report')
        throw new UsageError(`--from: expected auto, exec or report, got "${from}"`);
      // The cluster code only for a read through the API server (the node's own read stays small).
      const [{ getPod, loadCluster, podRefOf }, { remoteTable }] = await Promise.all([import('../kube.js'), import('../remote-routes.js')]);
      const c = await loadCluster(values);
      const ref = podRefOf(values.pod, c);
      const pod = await getPod(c, ref.namespace, ref.name);
      const t = await remoteTable(c, pod, { container: values.container, from, family: values.family as 'all' | '4' | '6' });
      if (values.output === 'json') {
        io.stdout.write(
          JSON.stringify(
            {
              pod: `${ref.namespace}/${ref.name}`,
              source: t.source,
              note: t.note,
              routes: t.routes.map((r) => ({ ...r, owned: r.protocol === RTPROT_OVNKUBE_ROUTE })),
            },
            null,
            2,
          ) + '\n',
        );
        return 0;
      }
      const parts: string[] = [`pod ${ref.namespace}/${ref.name} (${t.source}: ${t.note})\n`];
      if (values.family !== '6') parts.push(formatRouteTable4(t.routes, RTPROT_OVNKUBE_ROUTE));
      if (values.family !== '4') parts.push(formatRouteTable6(t.routes, RTPROT_OVNKUBE_ROUTE));
      io.stdout.write(parts.join('\n'));
      return 0;
    }
    let path = values.netns;
    if (values.pod !== undefined) {
      const m = /^([^/\s]+)\/([^/\s]+)$/.exec(values.pod);
      if (!m) throw new UsageError(`--pod expects NAMESPACE/NAME, got "${values.pod}"`);
      const scan = await scanCniCacheDir(values['cni-cache-dir']);
      for (const err of scan.errors) if (!/not a pod's sandbox/.test(err)) io.stderr.write(`warning: ${err}\n`);
      const found = findPodNetns(scan.entries, m[1]!, m[2]!);
      if (!found)
        throw new InputError(
          `pod ${values.pod}: no CNI cache file in ${values['cni-cache-dir']} names it (${scan.entries.length} pod entries found)`,
        );
      path = found.sandbox;
    }
    let routes: KernelRoute[];
    let rules: KernelRule[] = [];
    let symRoutes: KernelRoute[] = [];
    let client: RtnlClient;
    try {
      client = RtnlClient.open(path!, { policy: { netnsDir: values['netns-dir'] } });
    } catch (e) {
      if (isNetnsError(e)) throw new InputError(e.message);
      throw e;
    }
    try {
      routes = await client.listRoutes(values.family === 'all' ? {} : { family: Number(values.family) as 4 | 6 });
      if (values.output === 'text') {
        // Symmetric return paths (docs/routing.md): our rules and the routes of their tables.
        rules = (await client.listRules(values.family === 'all' ? undefined : (Number(values.family) as 4 | 6))).filter(
          (r) => r.protocol === RTPROT_OVNKUBE_ROUTE,
        );
        if (rules.length) {
          const tables = new Set(rules.map((r) => r.table));
          symRoutes = (
            await client.listRoutes({ table: 'any', ...(values.family === 'all' ? {} : { family: Number(values.family) as 4 | 6 }) })
          ).filter((r) => tables.has(r.table));
        }
      }
    } finally {
      client.close();
    }
    if (values.output === 'json') {
      io.stdout.write(
        JSON.stringify(
          routes.map((r) => ({ ...r, owned: r.protocol === RTPROT_OVNKUBE_ROUTE })),
          null,
          2,
        ) + '\n',
      );
      return 0;
    }
    const parts: string[] = [`netns ${path}\n`];
    if (values.family !== '6') parts.push(formatRouteTable4(routes, RTPROT_OVNKUBE_ROUTE));
    if (values.family !== '4') parts.push(formatRouteTable6(routes, RTPROT_OVNKUBE_ROUTE));
    if (rules.length) parts.push(formatSymmetric(rules, symRoutes));
    io.stdout.write(parts.join('\n'));
    return 0;
  },
};

/** Our rules (`ip rule` style) and the routes of their tables, only when there are any. */
function formatSymmetric(rules: KernelRule[], routes: KernelRoute[]): string {
  const lines = ['Symmetric return paths (ip rule, proto ' + RTPROT_OVNKUBE_ROUTE + ')'];
  for (const r of [...rules].sort((a, b) => a.priority - b.priority || a.table - b.table || (a.src ?? '').localeCompare(b.src ?? ''))) {
    lines.push(`${r.priority}:\tfrom ${r.src ?? 'all'} lookup ${r.table}`);
  }
  for (const r of [...routes].sort((a, b) => a.table - b.table || a.family - b.family || a.dst.localeCompare(b.dst))) {
    const owner = r.protocol === RTPROT_OVNKUBE_ROUTE ? '' : ` proto ${r.protocol}`;
    lines.push(`table ${r.table}: ${r.dst}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${owner}`);
  }
  return lines.join('\n') + '\n';
}
