// The one netlink wrapper on the real kernel: links, routes, typed errno errors (with the
// kernel's own words), requests batched within the in-flight bound, exchanges that never hang,
// close() with requests pending, and netns events.
import { closeSync } from 'node:fs';
import t from 'tap';
import { isNetlinkError, RtnlClient } from '../../injector/kernel/netlink.js';
import type * as netlink from 'netlink';
import {
  AF_INET,
  AF_INET6,
  routeFromMessage,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  type KernelRoute,
} from '../../injector/kernel/netlink-codec.js';
import { subscribeNetns, type NetnsEvent } from '../../injector/kernel/netlink-events.js';
import { createRtNetlink } from '../../injector/kernel/netlink-lite.js';
import { rtnlOpen, rtnlTalk, withNetns } from '../../injector/kernel/netns.js';
import { addVeth, ipRoutes, makeNetns, makePod, openFds } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { until } from '../util/until.js';

const PROTO = 111;

t.test('links and routes of a pod netns', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  const links = await c.listLinks();
  t.same(links.map((l) => l.name).sort(), ['eth0', 'eth1', 'lo']);
  t.ok(
    links.every((l) => l.up),
    'all up',
  );
  const routes = await c.listRoutes({ family: 4 });
  const lines = routes.map((r) => `${r.dst}${r.via ? ` via ${r.via}` : ''} dev ${r.dev}`).sort();
  t.same(
    lines,
    ['0.0.0.0/0 via 169.254.1.1 dev eth0', '10.124.2.0/24 dev eth1', '169.254.1.1/32 dev eth0'],
    'the main table as ip route shows it (local table excluded)',
  );
  t.equal(routes.find((r) => r.dst === '10.124.2.0/24')?.protocol, 2, 'connected route is proto kernel');
});

t.test('links read from the raw dump agree with ip link: index, name, up', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  // A down link, and one whose name is as long as a name may be (15 bytes, no NUL to spare in ip's view).
  pod.ip('link', 'add', 'down0', 'type', 'veth', 'peer', 'name', 'longname-012345');
  pod.ip('link', 'set', 'longname-012345', 'up');
  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  const ours = (await c.listLinks()).map((l) => `${l.index} ${l.name} ${l.up ? 'up' : 'down'}`).sort();
  const ip = (JSON.parse(pod.ip('-j', 'link', 'show')) as { ifindex: number; ifname: string; flags: string[] }[])
    .map((l) => `${l.ifindex} ${l.ifname} ${l.flags.includes('UP') ? 'up' : 'down'}`)
    .sort();
  t.same(ours, ip);
  t.ok(ours.some((l) => l.endsWith('down0 down')) && ours.some((l) => l.endsWith('longname-012345 up')));
});

t.test('routes read from the raw dump equal the package parse of the same tables', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  // Every kind of entry the engine and the CLI read: local/broadcast/multicast (local table),
  // IPv6, reject types, gateway + metric, prefsrc, mtu/advmss, multipath, another table, tos.
  pod.ip('-6', 'addr', 'add', 'fd00:124:2::5/64', 'dev', 'eth1', 'nodad');
  pod.ip('route', 'add', 'blackhole', '172.31.1.0/24', 'proto', '111');
  pod.ip('route', 'add', 'unreachable', '172.31.2.0/24', 'metric', '7');
  pod.ip('route', 'add', '172.31.3.0/24', 'via', '10.124.2.1', 'dev', 'eth1', 'metric', '300', 'src', '10.124.2.5', 'proto', '111');
  pod.ip('route', 'add', '172.31.4.0/24', 'dev', 'eth1', 'mtu', '1400', 'advmss', '1360', 'proto', '111');
  pod.ip('route', 'add', '172.31.5.0/24', 'nexthop', 'via', '10.124.2.1', 'dev', 'eth1', 'nexthop', 'via', '169.254.1.1', 'dev', 'eth0');
  pod.ip('route', 'add', '172.31.6.0/24', 'dev', 'eth1', 'table', '1001', 'proto', '111');
  pod.ip('route', 'add', '172.31.7.0/24', 'tos', '0x10', 'dev', 'eth1');
  pod.ip('-6', 'route', 'add', 'fd00:99::/64', 'via', 'fd00:124:2::1', 'dev', 'eth1', 'metric', '100', 'proto', '111');
  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  const links = await c.listLinks();
  const raw = await c.listRoutes({ table: 'any', links });
  // The reference: the `netlink` package's own socket and parser, in the same netns.
  const sock = withNetns(pod.path, () => createRtNetlink());
  t.teardown(() => sock.socket.close());
  const names = new Map(links.map((l) => [l.index, l.name]));
  const reference: KernelRoute[] = [];
  for (const family of [AF_INET, AF_INET6]) {
    for (const m of await sock.getRoutes({ family })) {
      const r = routeFromMessage(m as netlink.rt.RouteMessage);
      if (!r) continue;
      if (r.oif !== undefined && names.has(r.oif)) r.dev = names.get(r.oif);
      reference.push(r);
    }
  }
  const key = (r: KernelRoute): string => JSON.stringify(r);
  t.ok(raw.length >= 20, `a full dump (${raw.length} routes)`);
  t.same(raw.map(key).sort(), reference.map(key).sort(), 'the same routes, the same fields, the same key order');
  t.ok(raw.some((r) => r.multipath) && raw.some((r) => r.mtu === 1400 && r.advmss === 1360) && raw.some((r) => r.tos === 16));
});

t.test('errno mapping', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  const eth1 = (await c.listLinks()).find((l) => l.name === 'eth1')!.index;
  const w = { dst: '172.16.10.0/24', oif: eth1, scope: RT_SCOPE_LINK, protocol: PROTO };
  await c.addRoute(w);
  await t.rejects(c.addRoute(w), { name: 'NetlinkError', code: 'EEXIST' }, 'adding twice: EEXIST');
  await c.replaceRoute(w); // replace of the same is fine
  await t.rejects(c.deleteRoute({ dst: '172.16.99.0/24' }), { code: 'ESRCH' }, 'deleting a missing route: ESRCH');
  await t.rejects(
    c.addRoute({ dst: '10.9.0.0/16', oif: eth1, via: '10.55.0.1', scope: RT_SCOPE_UNIVERSE, protocol: PROTO }),
    { code: 'ENETUNREACH' },
    'gateway not on any link: ENETUNREACH',
  );
  await t.rejects(c.addRoute({ ...w, dst: '172.16.11.0/24', oif: 9999 }), { code: 'ENODEV' }, 'no such ifindex: ENODEV');
  const err = await c.addRoute(w).catch((e: unknown) => e);
  t.ok(isNetlinkError(err, 'EEXIST'));
  t.match(
    (err as Error).message,
    /add route 172\.16\.10\.0\/24 .* in netns .*: EEXIST \(a route with this destination/,
    'message names op, route, netns, meaning',
  );
  await c.deleteRoute({ dst: '172.16.10.0/24', protocol: PROTO });
  t.notOk(
    ipRoutes(pod).some((r) => r.dst === '172.16.10.0/24'),
    'deleted with scope NOWHERE (any)',
  );
});

t.test('a burst of 3000 routes in one netns stays within the in-flight bound', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const c = RtnlClient.open(pod.path, { maxInFlight: 32 });
  t.teardown(() => c.close());
  const eth1 = (await c.listLinks()).find((l) => l.name === 'eth1')!.index;
  const N = 3000;
  const dsts = Array.from({ length: N }, (_, i) => `10.${200 + Math.floor(i / 256)}.${i % 256}.0/24`);
  // Everything is fired at once; the wrapper must queue, not hand 3000 requests to the socket.
  await Promise.all(dsts.map((dst) => c.addRoute({ dst, oif: eth1, scope: RT_SCOPE_LINK, protocol: PROTO })));
  t.equal(c.stats.maxInFlightSeen, 32, 'in flight never exceeded the bound (and reached it)');
  t.equal(c.stats.inFlight, 0);
  const ours = ipRoutes(pod).filter((r) => r.protocol === String(PROTO));
  t.equal(ours.length, N, 'ip -j route shows every route');
  const listed = (await c.listRoutes({ family: 4 })).filter((r) => r.protocol === PROTO);
  t.equal(listed.length, N, 'and so does a netlink dump');
  await Promise.all(dsts.map((dst) => c.deleteRoute({ dst, protocol: PROTO })));
  t.equal(ipRoutes(pod).filter((r) => r.protocol === String(PROTO)).length, 0, 'all deleted again');
});

t.test('close() rejects what is pending and leaks no fd', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const fds = openFds();
  const c = RtnlClient.open(pod.path, { maxInFlight: 4 });
  const eth1 = (await c.listLinks()).find((l) => l.name === 'eth1')!.index;
  const ps = Array.from({ length: 50 }, (_, i) => c.addRoute({ dst: `10.77.${i}.0/24`, oif: eth1, scope: RT_SCOPE_LINK, protocol: PROTO }));
  c.close();
  const results = await Promise.allSettled(ps);
  const closed = results.filter((r) => r.status === 'rejected' && isNetlinkError(r.reason, 'ECLOSED')).length;
  t.ok(closed > 0, `${closed} of 50 requests rejected with ECLOSED, none hung`);
  t.ok(
    results.every((r) => r.status === 'fulfilled' || isNetlinkError(r.reason)),
    'every failure is a NetlinkError',
  );
  await t.rejects(c.listLinks(), { code: 'ECLOSED' });
  t.equal(openFds(), fds, 'socket fd closed');
});

t.test('requests made together go out together, each with its own answer', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const c = RtnlClient.open(pod.path, { maxInFlight: 8 });
  t.teardown(() => c.close());
  const eth1 = (await c.listLinks()).find((l) => l.name === 'eth1')!.index;
  const before = { ...c.stats };
  // 20 writes in one go, one of them failing (its destination twice): 20 requests in 3 exchanges.
  const dsts = Array.from({ length: 19 }, (_, i) => `10.66.${i}.0/24`);
  const results = await Promise.allSettled(
    [...dsts, '10.66.3.0/24'].map((dst) => c.addRoute({ dst, oif: eth1, scope: RT_SCOPE_LINK, protocol: PROTO })),
  );
  t.equal(c.stats.requests - before.requests, 20, '20 requests');
  t.equal(c.stats.exchanges - before.exchanges, 3, 'in 3 exchanges with the kernel (8 + 8 + 4)');
  t.equal(c.stats.maxInFlightSeen, 8, 'none larger than maxInFlight');
  t.same(
    results.map((r) => r.status),
    [...dsts.map(() => 'fulfilled'), 'rejected'],
    'each request has its own answer, in the order made',
  );
  t.ok(isNetlinkError((results[19] as PromiseRejectedResult).reason, 'EEXIST'), 'the repeated one: EEXIST');
  t.same(
    ipRoutes(pod)
      .filter((r) => r.protocol === String(PROTO))
      .map((r) => r.dst)
      .sort(),
    [...dsts].sort(),
    'the failure stopped nothing after it',
  );
  // A dump made with writes is an exchange of its own, after them.
  const [, listed] = await Promise.all([
    c.deleteRoute({ dst: '10.66.0.0/24', protocol: PROTO }),
    c.listRoutes({ family: 4, links: await c.listLinks() }),
  ]);
  t.notOk(
    listed.some((r) => r.dst === '10.66.0.0/24'),
    'the dump saw the delete made before it',
  );
  t.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, 0, 'and no request armed a timer');
});

t.test("the kernel's own explanation of an error is kept", async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  const eth1 = (await c.listLinks()).find((l) => l.name === 'eth1')!.index;
  const err = await c
    .addRoute({ dst: '10.9.0.0/16', oif: eth1, via: '10.55.0.1', scope: RT_SCOPE_UNIVERSE, protocol: PROTO })
    .catch((e: unknown) => e);
  t.ok(isNetlinkError(err, 'ENETUNREACH'), String(err));
  t.match((err as { kernel?: string }).kernel, /gateway/i, `the extended ACK: ${(err as { kernel?: string }).kernel}`);
  t.match((err as Error).message, /ENETUNREACH \(the gateway is not reachable from that device\); the kernel says: .*gateway/i);
});

t.test('an exchange never hangs: ETIMEDOUT past its bound, ENOBUFS at once on an overflow', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const fd = withNetns(pod.path, () => rtnlOpen(0));
  t.teardown(() => closeSync(fd));
  // One request sent, two answers awaited: the second never comes.
  const getlink = Buffer.alloc(32);
  getlink.writeUInt32LE(32, 0);
  getlink.writeUInt16LE(18, 4); // RTM_GETLINK
  getlink.writeUInt16LE(0x301, 6); // REQUEST | DUMP
  getlink.writeUInt32LE(7, 8);
  t.throws(() => rtnlTalk(fd, getlink, 2, 7, 50), { code: 'ETIMEDOUT' }, 'a missing answer: ETIMEDOUT after the bound');
  // The dump's parts that were read are gone with it; the socket still works.
  getlink.writeUInt32LE(9, 8);
  const again = rtnlTalk(fd, getlink, 1, 9, 1000);
  t.ok(again.length > 0, 'the next exchange is answered');

  // A receive buffer far too small for a batch's ACKs: the read fails at once.
  const tiny = withNetns(pod.path, () => rtnlOpen(1)); // the kernel's smallest receive buffer
  t.teardown(() => closeSync(tiny));
  const msgs: Buffer[] = [];
  for (let i = 0; i < 128; i++) {
    const m = Buffer.alloc(16 + 12);
    m.writeUInt32LE(28, 0);
    m.writeUInt16LE(26, 4); // RTM_GETROUTE, a lookup: its answer is a whole route message
    m.writeUInt16LE(0x5, 6); // REQUEST | ACK
    m.writeUInt32LE(100 + i, 8);
    m[16] = 2; // AF_INET
    msgs.push(m);
  }
  t.throws(() => rtnlTalk(tiny, Buffer.concat(msgs), 128, 100, 10_000), { code: 'ENOBUFS' }, 'ENOBUFS, not a wait for the bound');
});

t.test('link and route events of a netns', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod, node } = makePod(t, { eth1: false });
  const events: NetnsEvent[] = [];
  let wake: (() => void) | null = null;
  const sub = subscribeNetns(pod.path, (ev) => {
    events.push(ev);
    wake?.();
  });
  t.teardown(() => sub.close());
  const waitFor = async (pred: (e: NetnsEvent) => boolean): Promise<NetnsEvent> => {
    for (;;) {
      const hit = events.find(pred);
      if (hit) return hit;
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  };
  addVeth(pod, 'eth1', node, ['10.124.2.5/24']);
  const link = await waitFor((e) => e.kind === 'link' && e.action === 'new' && e.link.name === 'eth1');
  t.equal(link.kind === 'link' && link.link.name, 'eth1', 'a new link is reported by name');
  pod.ip('route', 'add', '172.16.10.0/24', 'dev', 'eth1', 'proto', String(PROTO));
  const added = await waitFor((e) => e.kind === 'route' && e.action === 'new' && e.route.dst === '172.16.10.0/24');
  t.equal(added.kind === 'route' && added.route.protocol, PROTO, 'route event carries the protocol');
  pod.ip('route', 'del', '172.16.10.0/24');
  await waitFor((e) => e.kind === 'route' && e.action === 'del' && e.route.dst === '172.16.10.0/24');
  pod.ip('-6', 'route', 'add', 'fd00:99::/64', 'dev', 'eth1');
  await waitFor((e) => e.kind === 'route' && e.route.family === 6 && e.route.dst === 'fd00:99::/64');
  t.pass('IPv6 route events arrive too');
  const other = makeNetns(t, 'quiet');
  other.ip('route', 'add', 'blackhole', '10.66.0.0/16');
  // Evidence that the socket was read after the other netns's route was added: a later route
  // of the subscribed netns arrives. Only then can the absence of the other one mean anything.
  pod.ip('route', 'add', '172.16.99.0/24', 'dev', 'eth1');
  await waitFor((e) => e.kind === 'route' && e.action === 'new' && e.route.dst === '172.16.99.0/24');
  sub.close();
  t.ok(sub.closed);
  t.notOk(
    events.some((e) => e.kind === 'route' && e.route.dst === '10.66.0.0/16'),
    'events of other netns never show up',
  );
});

t.test('an event storm overflowing the buffer drops events instead of aborting the process', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  // With the `netlink` package's socket unhardened this aborted node: ENOBUFS -> epoll error ->
  // the package threw inside native code. Here the smallest buffer the kernel allows is used.
  const { pod } = makePod(t);
  let seen = 0;
  const sub = subscribeNetns(
    pod.path,
    () => {
      seen++;
    },
    { recvBufferSize: 1 },
  );
  t.teardown(() => sub.close());
  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  const eth1 = (await c.listLinks()).find((l) => l.name === 'eth1')!.index;
  const N = 3000;
  await Promise.all(
    Array.from({ length: N }, (_, i) =>
      c.addRoute({ dst: `10.${200 + Math.floor(i / 256)}.${i % 256}.0/24`, oif: eth1, scope: RT_SCOPE_LINK, protocol: PROTO }),
    ),
  );
  // Everything the socket kept has been read once its queue is empty; the kernel counted the rest.
  await until('the event queue is read', () => sub.queue().rmem === 0);
  const { drops } = sub.queue();
  t.ok(drops > 0 && seen < N, `the process is alive; ${seen} of ${N} events arrived, ${drops} dropped (counted by the kernel)`);
  t.equal(ipRoutes(pod).filter((r) => r.protocol === String(PROTO)).length, N, 'every route was written regardless');
});
