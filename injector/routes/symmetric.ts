/**
 * Symmetric return paths (docs/routing.md): for each device of `plan.symmetric`, a routing
 * table of its own holding that device's connected subnets and a default route via its
 * gateway, plus `ip rule from <each of its addresses> lookup <that table>`. Traffic the pod
 * sends from eth1's address (every reply to what came in on eth1) then leaves by eth1,
 * whatever the main table says about the peer (as Spiderpool's coordinator and the CNI `sbr`
 * plugin do).
 *
 * Everything written here carries our protocol (111) like our routes: a rule or a route in
 * a table other than main with that protocol is ours, and is removed exactly when the plan
 * no longer asks for it. Nothing else is ever touched. Pure planning (planSymmetric) and its
 * execution (applySymmetric) are separate, so the first is table-tested.
 */
import { createHash } from 'node:crypto';
import { formatCIDR, parseIP, type Family } from '../../core/ip.js';
import { isNetlinkError, type RtnlClient } from '../kernel/netlink.js';
import {
  RT_SCOPE_LINK,
  RT_SCOPE_NOWHERE,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  type KernelAddr,
  type KernelRoute,
  type KernelRule,
  type LinkInfo,
  type RuleWrite,
} from '../kernel/netlink-codec.js';
import { defaultDst, gatewayOf, isSourceLookupRule, type SavedDefault, type SkippedItem, type SkipReason } from './diff.js';

/**
 * Preference of our `ip rule`s: after the `local` rule (0), before `main` (32766) and
 * `default` (32767); 1-1099 stay free for rules an operator wants before ours.
 */
export const SYMMETRIC_RULE_PRIORITY = 1100;

/**
 * The routing table of a device, from its name only (the same on every node and every pod):
 * `eth<N>` → 1000 + N, `net<N>` (Multus' default names) → 2000 + N, for N up to 999; any
 * other name → 100000 + (first 32 bits of sha256(name)) mod 900000. Never a reserved table
 * (0, 253-255) nor one `ip route` users usually pick (1-999).
 */
export function symmetricTable(dev: string): number {
  const m = /^(eth|net)(0|[1-9][0-9]{0,2})$/.exec(dev);
  if (m) return (m[1] === 'eth' ? 1000 : 2000) + Number(m[2]);
  return 100_000 + (createHash('sha256').update(dev).digest().readUInt32BE(0) % 900_000);
}

/** One route of a device's table. */
export interface TableRoute {
  family: Family;
  dst: string;
  table: number;
  dev: string;
  oif: number;
  via?: string;
  scope: number;
}

/** One item of what was done, for reports: a rule (`from src lookup table`) or a table route. */
export interface SymmetricItem {
  kind: 'rule' | 'route';
  family: Family;
  table: number;
  dst: string;
  dev?: string;
  via?: string;
}

/** What planSymmetric decided. */
export interface SymmetricDiff {
  addRoutes: TableRoute[];
  replaceRoutes: TableRoute[];
  removeRoutes: KernelRoute[];
  addRules: RuleWrite[];
  removeRules: KernelRule[];
  unchanged: SymmetricItem[];
  skipped: SkippedItem[];
  /** Device → table of the devices in force. */
  tables: { dev: string; table: number }[];
}

/** A skipped item about a device's return path: dst names what could not be done. */
function skip(family: Family, dst: string, dev: string, reason: SkipReason, detail: string): SkippedItem {
  return { family, dst, dev, reason, detail };
}

const ruleKey = (family: Family, src: string, table: number, priority: number): string => `${family} ${src} ${table} ${priority}`;
const routeKey = (table: number, dst: string): string => `${table} ${dst}`;

/**
 * Decide the writes that bring the netns's owned rules and owned non-main routes to what
 * `devices` ask for. `main` is the main table (where each device's gateway is found, as for
 * `via: gateway`); `owned` the routes of other tables with our protocol; `rules` every rule.
 */
export function planSymmetric(
  devices: readonly string[],
  links: readonly LinkInfo[],
  addrs: readonly KernelAddr[],
  main: readonly KernelRoute[],
  owned: readonly KernelRoute[],
  rules: readonly KernelRule[],
  protocol: number,
  /** The original default routes ours replaced (a device's gateway when the table no longer shows it). */
  saved: readonly SavedDefault[] = [],
): SymmetricDiff {
  const diff: SymmetricDiff = {
    addRoutes: [],
    replaceRoutes: [],
    removeRoutes: [],
    addRules: [],
    removeRules: [],
    unchanged: [],
    skipped: [],
    tables: [],
  };
  const wantRoutes = new Map<string, TableRoute>();
  const wantRules = new Map<string, RuleWrite & { family: Family; dev: string }>();
  const usedTables = new Map<number, string>();
  for (const dev of devices) {
    const link = links.find((l) => l.name === dev);
    const table = symmetricTable(dev);
    if (!link) {
      diff.skipped.push(
        skip(
          4,
          `symmetric ${dev}`,
          dev,
          'dev-missing',
          `symmetric return path of ${dev}: no such device in the pod (written when it appears)`,
        ),
      );
      continue;
    }
    const other = usedTables.get(table);
    if (other !== undefined) {
      diff.skipped.push(
        skip(
          4,
          `symmetric ${dev}`,
          dev,
          'collision',
          `symmetric return path of ${dev}: its table ${table} is also ${other}'s; rename one of the devices`,
        ),
      );
      continue;
    }
    usedTables.set(table, dev);
    diff.tables.push({ dev, table });
    const mine = addrs.filter((a) => a.index === link.index && a.scope === RT_SCOPE_UNIVERSE);
    if (!mine.length) {
      diff.skipped.push(
        skip(
          4,
          `symmetric ${dev}`,
          dev,
          'dev-missing',
          `symmetric return path of ${dev}: the device has no global address yet (written when it gets one)`,
        ),
      );
      continue;
    }
    for (const family of [4, 6] as const) {
      const fam = mine.filter((a) => a.family === family);
      if (!fam.length) continue;
      for (const a of fam) {
        const ip = parseIP(a.address);
        if (!ip.ok) continue;
        const bits = family === 4 ? 32 : 128;
        const net = formatCIDR({ family, value: ip.value.value & ~((1n << BigInt(bits - a.prefixLen)) - 1n), bits: a.prefixLen });
        if (a.prefixLen < bits) {
          wantRoutes.set(routeKey(table, net), {
            family,
            dst: net,
            table,
            dev,
            oif: link.index,
            scope: family === 4 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE,
          });
        }
        const src = `${a.address}/${bits}`;
        wantRules.set(ruleKey(family, src, table, SYMMETRIC_RULE_PRIORITY), {
          family,
          dev,
          src,
          table,
          priority: SYMMETRIC_RULE_PRIORITY,
          protocol,
        });
      }
      const gw = gatewayOf(main, link, family, protocol, saved);
      if (gw === undefined) {
        diff.skipped.push(
          skip(
            family,
            `${defaultDst(family)} table ${table}`,
            dev,
            'no-gateway',
            `symmetric return path of ${dev}: the pod's table has no IPv${family} route through a gateway on ${dev} that ovnkube-route did not write, so table ${table} only reaches ${dev}'s own subnets`,
          ),
        );
      } else {
        wantRoutes.set(routeKey(table, defaultDst(family)), {
          family,
          dst: defaultDst(family),
          table,
          dev,
          oif: link.index,
          via: gw,
          scope: RT_SCOPE_UNIVERSE,
        });
      }
    }
  }
  const have = new Map(owned.filter((k) => k.table !== RT_TABLE_MAIN && k.protocol === protocol).map((k) => [routeKey(k.table, k.dst), k]));
  for (const [k, w] of wantRoutes) {
    const h = have.get(k);
    const item: SymmetricItem = {
      kind: 'route',
      family: w.family,
      table: w.table,
      dst: w.dst,
      dev: w.dev,
      ...(w.via ? { via: w.via } : {}),
    };
    if (!h) diff.addRoutes.push(w);
    else if (
      h.oif === w.oif &&
      h.via === w.via &&
      (w.family === 6 || h.scope === w.scope) &&
      h.type === 'UNICAST' &&
      !h.multipath &&
      h.prefsrc === undefined &&
      h.mtu === undefined &&
      h.advmss === undefined
    )
      diff.unchanged.push(item);
    else diff.replaceRoutes.push(w);
  }
  for (const [k, h] of have) if (!wantRoutes.has(k)) diff.removeRoutes.push(h);
  const haveRules = rules.filter((r) => r.protocol === protocol);
  const seen = new Set<string>();
  for (const r of haveRules) {
    const k = isSourceLookupRule(r) ? ruleKey(r.family, r.src!, r.table, r.priority) : null;
    if (k !== null && wantRules.has(k) && !seen.has(k)) {
      seen.add(k);
      const w = wantRules.get(k)!;
      diff.unchanged.push({ kind: 'rule', family: w.family, table: w.table, dst: w.src, dev: w.dev });
    } else diff.removeRules.push(r);
  }
  for (const [k, w] of wantRules) if (!seen.has(k)) diff.addRules.push(w);
  return diff;
}

/** What applySymmetric did. */
export interface SymmetricResult {
  added: SymmetricItem[];
  removed: SymmetricItem[];
  unchanged: SymmetricItem[];
  skipped: SkippedItem[];
  tables: { dev: string; table: number }[];
}

function itemOfRoute(r: TableRoute | KernelRoute): SymmetricItem {
  return {
    kind: 'route',
    family: r.family,
    table: r.table,
    dst: r.dst,
    ...(r.dev ? { dev: r.dev } : {}),
    ...(r.via ? { via: r.via } : {}),
  };
}

function itemOfRule(r: { family: Family; src?: string; table: number }, dev?: string): SymmetricItem {
  return { kind: 'rule', family: r.family, table: r.table, dst: r.src ?? 'all', ...(dev ? { dev } : {}) };
}

/** The errors that mean the client is unusable (the apply stops). */
const fatal = (e: unknown): boolean => isNetlinkError(e, 'ECLOSED') || !isNetlinkError(e);

/**
 * Bring the netns's symmetric return paths to `devices` (empty: remove every one of ours).
 * Order: stale rules go first (nothing points at a table being emptied), then table routes
 * are written and stale ones removed, then the new rules (a rule never points at a table
 * without its routes). One failing write never stops the others; it is reported skipped.
 */
export async function applySymmetric(
  client: RtnlClient,
  devices: readonly string[],
  read: {
    links: readonly LinkInfo[];
    main: readonly KernelRoute[];
    others: readonly KernelRoute[];
    rules: readonly KernelRule[];
    saved?: readonly SavedDefault[];
  },
  protocol: number,
): Promise<SymmetricResult> {
  // From the engine's dumps: `others`, the routes of every table (main's are ignored here);
  // the rules of both families. Addresses only when a device asks.
  const { links, main, others, rules } = read;
  const addrs = devices.length ? await client.listAddresses() : [];
  const owned = others.filter((k) => k.table !== RT_TABLE_MAIN && k.protocol === protocol);
  const d = planSymmetric(devices, links, addrs, main, owned, rules, protocol, read.saved ?? []);
  const res: SymmetricResult = { added: [], removed: [], unchanged: d.unchanged, skipped: [...d.skipped], tables: d.tables };
  const attempt = async (item: SymmetricItem, op: () => Promise<void>, done: SymmetricItem[]): Promise<void> => {
    try {
      await op();
      done.push(item);
    } catch (e) {
      if (fatal(e)) throw e;
      if (done === res.removed && (isNetlinkError(e, 'ESRCH') || isNetlinkError(e, 'ENOENT'))) return; // gone already
      res.skipped.push({
        family: item.family,
        dst: item.kind === 'rule' ? `from ${item.dst} table ${item.table}` : `${item.dst} table ${item.table}`,
        ...(item.dev ? { dev: item.dev } : {}),
        reason: isNetlinkError(e, 'EEXIST') ? 'collision' : isNetlinkError(e, 'ENETUNREACH') ? 'gateway-unreachable' : 'error',
        detail: `symmetric return path: ${(e as Error).message}`,
      });
    }
  };
  await Promise.all(
    d.removeRules.map((r) =>
      attempt(
        itemOfRule(r),
        () =>
          client.deleteRule({
            src: r.src ?? (r.family === 4 ? '0.0.0.0/0' : '::/0'),
            table: r.table,
            priority: r.priority,
            protocol: r.protocol,
          }),
        res.removed,
      ),
    ),
  );
  const write = (w: TableRoute, replace: boolean) =>
    attempt(
      itemOfRoute(w),
      () => {
        const rw = { dst: w.dst, oif: w.oif, scope: w.scope, protocol, table: w.table, ...(w.via ? { via: w.via } : {}) };
        return replace ? client.replaceRoute(rw) : client.addRoute(rw);
      },
      res.added,
    );
  // Link routes first: a default route's gateway is reached through them.
  await Promise.all([
    ...d.addRoutes.filter((w) => !w.via).map((w) => write(w, false)),
    ...d.replaceRoutes.filter((w) => !w.via).map((w) => write(w, true)),
  ]);
  await Promise.all([
    ...d.addRoutes.filter((w) => w.via).map((w) => write(w, false)),
    ...d.replaceRoutes.filter((w) => w.via).map((w) => write(w, true)),
  ]);
  await Promise.all(
    d.removeRoutes.map((k) =>
      attempt(
        itemOfRoute(k),
        () =>
          client.deleteRoute({
            dst: k.dst,
            table: k.table,
            protocol: k.protocol,
            priority: k.priority,
            tos: k.tos,
            scope: RT_SCOPE_NOWHERE,
            ...(k.oif !== undefined ? { oif: k.oif } : {}),
          }),
        res.removed,
      ),
    ),
  );
  const devOf = new Map(d.tables.map((t) => [t.table, t.dev]));
  await Promise.all(
    d.addRules.map((w) =>
      attempt(
        itemOfRule({ family: w.src.includes(':') ? 6 : 4, src: w.src, table: w.table }, devOf.get(w.table)),
        () => client.addRule({ src: w.src, table: w.table, priority: w.priority, protocol: w.protocol }),
        res.added,
      ),
    ),
  );
  return res;
}

/** Short text of an item, as `ip` shows it: "from 10.124.2.5/32 lookup 1001", "0.0.0.0/0 via 10.124.2.1 dev eth1 table 1001". */
export function describeSymmetric(i: SymmetricItem): string {
  return i.kind === 'rule'
    ? `from ${i.dst} lookup ${i.table}`
    : `${i.dst}${i.via ? ` via ${i.via}` : ''}${i.dev ? ` dev ${i.dev}` : ''} table ${i.table}`;
}
