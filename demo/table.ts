/**
 * A pod's routing table as `route -n` prints it inside the pod (busybox), joined with
 * the netns's routes of protocol 111 (read on the node) to mark the rows ovnkube-route owns, and the demo's expected rows (the design document's target table).
 */

export interface TableRow {
  destination: string;
  gateway: string;
  genmask: string;
  flags: string;
  iface: string;
  /** `ovnkube-route` for protocol 111, else `cni`. */
  owner: 'ovnkube-route' | 'cni';
  /** Where the row comes from, for the reader (which Route, Service or CNI). */
  why: string;
}

const maskLen = (mask: string): number => mask.split('.').reduce((n, o) => n + (Number(o).toString(2).match(/1/g)?.length ?? 0), 0);

/**
 * `dst/len dev` keys of the routes in `owned`: the netns's `ip -4 route show proto 111`, read
 * on the node (busybox's `ip` in the pod neither prints nor filters the protocol).
 */
export function ownedKeys(owned: string): Set<string> {
  const out = new Set<string>();
  for (const l of owned.split('\n')) {
    const m = /^(\S+)(?: via \S+)? dev (\S+)/.exec(l.trim());
    if (!m) continue;
    const dst = m[1] === 'default' ? '0.0.0.0/0' : m[1]!.includes('/') ? m[1]! : `${m[1]}/32`;
    out.add(`${dst} ${m[2]}`);
  }
  return out;
}

/** Parse busybox `route -n` and mark each row's owner; `why` explains a row by its key. */
export function parseRouteN(routeN: string, owned: string, why: (row: Omit<TableRow, 'why'>) => string): TableRow[] {
  const ours = ownedKeys(owned);
  const rows: TableRow[] = [];
  for (const line of routeN.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^\d+\.\d+\.\d+\.\d+$/.test(f[0]!)) continue;
    const [destination, gateway, genmask, flags] = f as [string, string, string, string];
    const iface = f[7]!;
    const owner = ours.has(`${destination}/${maskLen(genmask)} ${iface}`) ? 'ovnkube-route' : 'cni';
    const row = { destination, gateway, genmask, flags, iface, owner } as const;
    rows.push({ ...row, why: why(row) });
  }
  return rows;
}

/** A row as the target table writes it: `destination gateway genmask flags iface`. */
export const rowKey = (r: Pick<TableRow, 'destination' | 'gateway' | 'genmask' | 'flags' | 'iface'>): string =>
  `${r.destination} ${r.gateway} ${r.genmask} ${r.flags} ${r.iface}`;

/** Plain-text table with a header, columns padded to their widest cell. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
