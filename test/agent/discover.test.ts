// The agent finds pod netns through the CNI cache, in either order (cache file after or
// before the pod), refuses the host netns and paths outside the netns dir, and uses the
// netns annotation fallback only when the netns holds the pod's IP.
import { execFileSync } from 'node:child_process';
import { mkdirSync, realpathSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { planHash } from '../../core/plan-codec.js';
import { STATUS_ANNOTATION, type Pod } from '../../core/types.js';
import { makePod, makeNetns, MISSION_TABLE, routeLines, ip } from '../util/netns.js';
import { memoryLogger } from '../../platform/log.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { cacheFileText, makePodObject, MISSION_PLAN, ownedLines, sleep, startRig, until, writeCacheFile } from './rig.js';

const WANT = [
  '10.124.0.0/16 via 10.124.2.1 dev eth1 proto 111',
  '10.86.205.109 dev eth1 proto 111',
  '10.86.69.17 dev eth0 proto 111',
  '172.16.10.0/24 dev eth1 proto 111',
  '192.168.2.0/24 dev eth0 proto 111',
];

t.test('finding netns', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;

  t.test('cache file written after the pod appears', async (t) => {
    const rig = await startRig(t);
    const { pod: ns } = makePod(t);
    const pod = rig.apply(makePodObject({ name: 'after', plan: MISSION_PLAN, key: rig.key }));
    await rig.agent.settled();
    t.same(ownedLines(routeLines(ns)), [], 'no routes while the netns is unknown');
    t.equal(rig.agent.view(pod.metadata!.uid!)?.kept, false, 'nothing kept yet');
    t.equal(await rig.metric('ovnkube_route_injector_pods_waiting_for_netns'), 1, 'counted as waiting for its netns');
    writeCacheFile(rig.cacheDir, pod, ns.path);
    const lines = await until('plan routes in the netns', () => {
      const l = ownedLines(routeLines(ns));
      return l.length === WANT.length && l;
    });
    t.same(lines, WANT, "exactly the plan's routes, marked proto 111");
    t.same(routeLines(ns), MISSION_TABLE, "the whole table is the mission's target table; the CNI routes are untouched");
    const status = await until('status reported', () =>
      decodeInjectorStatus(rig.api.pods.get(pod.metadata!.uid!)?.metadata?.annotations?.[STATUS_ANNOTATION]),
    );
    t.match(status, { plan: planHash(MISSION_PLAN), applied: 5, skipped: [], node: 'node-1' });
    t.equal(await rig.metric('ovnkube_route_injector_injection_latency_seconds'), 1, 'one injection latency observed');
    const sum =
      (await rig.registry.getSingleMetric('ovnkube_route_injector_injection_latency_seconds')!.get()).values.find((v) =>
        (v as { metricName?: string }).metricName?.endsWith('_sum'),
      )?.value ?? 0;
    t.comment(`injection latency of one pod (cache file seen -> 5 routes in place): ${Math.round(sum * 1000)} ms`);
    t.equal(await rig.metric('ovnkube_route_injector_routes_applied_total'), 5, '5 routes applied');
    t.equal(await rig.metric('ovnkube_route_injector_pods_waiting_for_netns'), 0, 'no longer waiting');
  });

  t.test('a replaced sandbox whose old cache file lingers: the newest sandbox wins', async (t) => {
    // The runtime recreated the pod's sandbox (new netns, new sandbox ID) and the old
    // sandbox's files are still there (its CNI DEL has not run, or failed): as on a real node,
    // each sandbox has its own files, named by sandbox ID.
    const rig = await startRig(t);
    const { pod: first } = makePod(t);
    const pod = rig.apply(makePodObject({ name: 'replaced', plan: MISSION_PLAN, key: rig.key }));
    const oldFile = writeCacheFile(rig.cacheDir, pod, first.path);
    await until('routes in the first sandbox', () => ownedLines(routeLines(first)).length === WANT.length);
    const { pod: second } = makePod(t);
    const newFile = writeCacheFile(rig.cacheDir, pod, second.path);
    t.not(newFile, oldFile, 'one file per sandbox');
    utimesSync(newFile, new Date(), new Date(Date.now() + 5000)); // written after the old one
    await until('routes in the new sandbox', () => ownedLines(routeLines(second)).length === WANT.length);
    t.same(ownedLines(routeLines(second)), WANT);
    await until('the agent holds the new netns only', () => rig.agent.view(pod.metadata!.uid!)?.netns === realpathSync(second.path));
    t.equal(await rig.metric('ovnkube_route_injector_netns_kept'), 1, 'one keeper, for the new sandbox');
    unlinkSync(oldFile); // CNI DEL of the old sandbox finally ran
    await rig.agent.settled();
    t.equal(rig.agent.view(pod.metadata!.uid!)?.netns, realpathSync(second.path), 'still the new sandbox');
  });

  t.test('cache file written (long) before the pod appears, atomically renamed into place', async (t) => {
    const rig = await startRig(t);
    const { pod: ns } = makePod(t);
    const obj = makePodObject({ name: 'before', plan: MISSION_PLAN, key: rig.key });
    writeCacheFile(rig.cacheDir, obj, ns.path, { atomic: true });
    writeCacheFile(rig.cacheDir, obj, ns.path, { network: 'k8s-pod-network', ifName: 'eth0' });
    await until('the index knows the sandbox', () => rig.index.lookup('default', 'before', obj.metadata!.uid)?.sandbox === ns.path);
    await rig.agent.settled(); // whatever the index's change queued has run
    t.equal(rig.agent.view(obj.metadata!.uid!), undefined, 'no pod, so nothing tracked');
    t.same(ownedLines(routeLines(ns)), [], 'a cache file alone writes nothing');
    rig.apply(obj);
    await until('plan routes in the netns', () => ownedLines(routeLines(ns)).length === WANT.length);
    t.same(ownedLines(routeLines(ns)), WANT);
    t.equal(rig.agent.view(obj.metadata!.uid!)?.source, 'cni-cache');
  });

  t.test('a half-written cache file is read again when the write completes', async (t) => {
    const rig = await startRig(t);
    const { pod: ns } = makePod(t);
    const obj = rig.apply(makePodObject({ name: 'partial', plan: MISSION_PLAN, key: rig.key }));
    const text = cacheFileText(obj, ns.path);
    const file = join(rig.cacheDir, `cni-loopback-${obj.metadata!.uid}-lo`);
    writeFileSync(file, text.slice(0, 100));
    await until(
      'the partial file was seen and did not parse',
      async () => (await rig.metric('ovnkube_route_injector_failures_total', { reason: 'cni-cache-unparsable' })) >= 1,
    );
    t.same(ownedLines(routeLines(ns)), [], 'nothing written from half a file');
    writeFileSync(file, text);
    await until('plan routes in the netns', () => ownedLines(routeLines(ns)).length === WANT.length);
    t.pass('routes written once the file is complete');
  });

  // Issue #16, defect 5: this was warned about on every dir event and every resync.
  t.test('a regular file in the netns dir is refused once, however often it is looked at', async (t) => {
    const warnings: string[] = [];
    const rig = await startRig(t, {
      log: memoryLogger('debug', (l) => {
        if (l.level === 'warn') warnings.push(`${l.msg} ${JSON.stringify(l)}`);
      }),
    });
    const name = `ovrt-plain-${process.pid}-${Date.now()}`;
    const plain = join('/var/run/netns', name);
    mkdirSync('/var/run/netns', { recursive: true });
    writeFileSync(plain, 'not a namespace');
    t.teardown(() => rmSync(plain, { force: true }));
    const pod = rig.apply(makePodObject({ name: 'plainfile', plan: MISSION_PLAN, key: rig.key }));
    writeCacheFile(rig.cacheDir, pod, plain);
    await until('refused', () => rig.api.eventsOf(pod.metadata!.uid!, 'NetnsRefused').length === 1);
    t.match(rig.api.eventsOf(pod.metadata!.uid!, 'NetnsRefused')[0]!.message, /is not a network namespace \(a regular file not on nsfs/);
    for (let i = 0; i < 3; i++) {
      rig.agent.netnsNamesChanged(new Set([name]));
      writeFileSync(plain, `not a namespace ${i}`); // real dir events too
      rig.agent.resyncAll();
      await rig.agent.settled();
    }
    await rig.agent.settled();
    t.equal(rig.api.eventsOf(pod.metadata!.uid!, 'NetnsRefused').length, 1, 'one Event');
    t.equal(warnings.filter((w) => w.includes(name)).length, 1, `one warning: ${warnings.join(' | ')}`);
    t.equal(await rig.metric('ovnkube_route_injector_failures_total', { reason: 'netns-refused' }), 1, 'counted once');
  });

  // Issue #16, defect 6: two cache files naming one netns; the first pod processed used to
  // win, so a stale file seen first after a restart got its plan into the other pod's netns.
  t.test('two cache files naming one netns: the pod IPs decide; ambiguity is refused; no IP yet waits', async (t) => {
    const STALE_PLAN = { v: 1, routes: [{ dst: '10.99.0.0/16', dev: 'eth1' }] } as const;
    await t.test('the pod whose IP the netns holds gets it, whichever is processed first', async (t) => {
      const rig = await startRig(t);
      const { pod: ns } = makePod(t);
      const stale = makePodObject({ name: 'stale', plan: STALE_PLAN as never, key: rig.key, podIPs: ['10.244.9.9'] });
      const owner = makePodObject({ name: 'owner', plan: MISSION_PLAN, key: rig.key, podIPs: ['10.244.1.5'] });
      // Both files are there, as after a restart; the stale pod is processed first.
      writeCacheFile(rig.cacheDir, stale, ns.path);
      writeCacheFile(rig.cacheDir, owner, ns.path);
      await rig.index.rescan();
      rig.apply(stale);
      rig.apply(owner);
      await until("the owner's plan is in the netns", () => ownedLines(routeLines(ns)).length === WANT.length, 20_000);
      t.same(ownedLines(routeLines(ns)), WANT, "exactly the owner's plan; nothing of the stale pod's");
      const ev = rig.api.eventsOf(stale.metadata!.uid!, 'NetnsRefused');
      t.equal(ev.length, 1, 'the stale pod is refused');
      t.match(
        ev[0]!.message,
        /is named by this pod's CNI cache file .* and by that of default\/owner .*; it holds none of this pod's IPs \(10\.244\.9\.9\): not this pod's netns, refusing it/,
      );
      t.equal(rig.api.eventsOf(owner.metadata!.uid!, 'NetnsRefused').length, 0);
    });

    await t.test("both pods' IPs in the netns: ambiguous, refused for both, reported and counted", async (t) => {
      const rig = await startRig(t);
      const { pod: ns } = makePod(t);
      const a = makePodObject({ name: 'twin-a', plan: MISSION_PLAN, key: rig.key, podIPs: ['10.244.1.5'] });
      const b = makePodObject({ name: 'twin-b', plan: STALE_PLAN as never, key: rig.key, podIPs: ['10.124.2.5'] });
      writeCacheFile(rig.cacheDir, a, ns.path);
      writeCacheFile(rig.cacheDir, b, ns.path);
      await rig.index.rescan();
      rig.apply(a);
      rig.apply(b);
      await until(
        'both refused',
        () =>
          rig.api.eventsOf(a.metadata!.uid!, 'NetnsRefused').length === 1 &&
          rig.api.eventsOf(b.metadata!.uid!, 'NetnsRefused').length === 1,
        20_000,
      );
      t.match(
        rig.api.eventsOf(a.metadata!.uid!, 'NetnsRefused')[0]!.message,
        /it holds the IPs of this pod and of default\/twin-b: ambiguous, refusing it for all of them/,
      );
      await rig.agent.settled();
      t.same(ownedLines(routeLines(ns)), [], 'nothing written into the contested netns');
      t.equal(await rig.metric('ovnkube_route_injector_failures_total', { reason: 'netns-ambiguous' }), 2);
    });

    await t.test("the index's files per netns follow files written and removed", async (t) => {
      const rig = await startRig(t);
      const { pod: ns } = makePod(t);
      const { pod: other } = makePod(t);
      const a = makePodObject({ name: 'idx-a', plan: MISSION_PLAN, key: rig.key });
      const b = makePodObject({ name: 'idx-b', plan: MISSION_PLAN, key: rig.key });
      const naming = (path: string): string[] =>
        rig.index
          .entriesNaming(path)
          .map((e) => e.podName)
          .sort();
      const fa = writeCacheFile(rig.cacheDir, a, ns.path);
      const fb = writeCacheFile(rig.cacheDir, b, ns.path);
      const fo = writeCacheFile(rig.cacheDir, b, other.path);
      await rig.index.rescan();
      t.same(naming(ns.path), ['idx-a', 'idx-b'], 'both files naming the netns');
      t.same(naming(other.path), ['idx-b'], 'and the other netns by its own file');
      rmSync(fb);
      await rig.index.rescan();
      t.same(naming(ns.path), ['idx-a'], 'a removed file no longer names it');
      rmSync(fa);
      rmSync(fo);
      await rig.index.rescan();
      t.same([naming(ns.path), naming(other.path)], [[], []], 'none once every file is gone');
    });

    await t.test('stale rival files are ignored without IP evidence: newer sandbox of its pod, or no such pod', async (t) => {
      const rig = await startRig(t);
      const { pod: ns } = makePod(t);
      const { pod: ns2 } = makePod(t);
      const moved = makePodObject({ name: 'moved', plan: STALE_PLAN as never, key: rig.key });
      const gone = makePodObject({ name: 'gone' });
      const owner = makePodObject({ name: 'owner3', plan: MISSION_PLAN, key: rig.key }); // no IP reported
      const old = writeCacheFile(rig.cacheDir, moved, ns.path, { network: 'old-net' });
      utimesSync(old, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
      writeCacheFile(rig.cacheDir, moved, ns2.path); // its newest sandbox is another netns
      writeCacheFile(rig.cacheDir, gone, ns.path); // a pod that is not on the node
      writeCacheFile(rig.cacheDir, owner, ns.path);
      await rig.index.rescan();
      rig.apply(moved);
      rig.apply(owner);
      rig.agent.podsSynced(); // the pod list is in: "gone" is not on the node
      await until("the owner's plan is in its netns", () => ownedLines(routeLines(ns)).length === WANT.length, 20_000);
      t.same(ownedLines(routeLines(ns)), WANT);
      await until("the moved pod's plan is in its newest netns", () => ownedLines(routeLines(ns2)).length === 1, 20_000);
      t.equal(rig.api.eventsOf(owner.metadata!.uid!, 'NetnsRefused').length, 0);
    });

    await t.test('the owner without an IP yet waits; its IP decides', async (t) => {
      const rig = await startRig(t);
      const { pod: ns } = makePod(t);
      const stale = makePodObject({ name: 'stale2', plan: STALE_PLAN as never, key: rig.key, podIPs: ['10.244.9.9'] });
      const owner = makePodObject({ name: 'owner2', plan: MISSION_PLAN, key: rig.key });
      writeCacheFile(rig.cacheDir, stale, ns.path);
      writeCacheFile(rig.cacheDir, owner, ns.path);
      await rig.index.rescan();
      rig.apply(stale);
      rig.apply(owner);
      await until('the stale pod is refused', () => rig.api.eventsOf(stale.metadata!.uid!, 'NetnsRefused').length === 1, 20_000);
      await rig.agent.settled();
      t.same(ownedLines(routeLines(ns)), [], 'nothing written while the owner has no IP');
      t.equal(rig.api.eventsOf(owner.metadata!.uid!, 'NetnsRefused').length, 0, 'the owner waits, it is not refused');
      rig.apply({ ...owner, status: { phase: 'Running', podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }] } });
      await until("the owner's plan is in the netns once its IP is known", () => ownedLines(routeLines(ns)).length === WANT.length, 20_000);
      t.same(ownedLines(routeLines(ns)), WANT);
    });
  });

  t.test('the host netns and paths outside the netns dir are refused', async (t) => {
    const rig = await startRig(t);
    const hostAlias = makeNetns(t, 'hostalias');
    hostAlias.del();
    // A name in the netns dir that is the host's own netns (a bind mount of this process's netns).
    ip('netns', 'attach', hostAlias.name, String(process.pid));
    t.teardown(() => {
      try {
        ip('netns', 'del', hostAlias.name);
      } catch {
        /* gone */
      }
    });
    const before = execFileSync('ip', ['-j', 'route', 'show', 'table', 'main'], { encoding: 'utf8' });
    const hostPod = rig.apply(makePodObject({ name: 'hostns', plan: MISSION_PLAN, key: rig.key }));
    writeCacheFile(rig.cacheDir, hostPod, hostAlias.path);
    const procPod = rig.apply(makePodObject({ name: 'procns', plan: MISSION_PLAN, key: rig.key }));
    writeCacheFile(rig.cacheDir, procPod, '/proc/1/ns/net');
    await until(
      'both refused',
      () =>
        rig.api.eventsOf(hostPod.metadata!.uid!, 'NetnsRefused').length === 1 &&
        rig.api.eventsOf(procPod.metadata!.uid!, 'NetnsRefused').length === 1,
    );
    t.match(rig.api.eventsOf(hostPod.metadata!.uid!, 'NetnsRefused')[0]!.message, /host network namespace/);
    t.match(rig.api.eventsOf(procPod.metadata!.uid!, 'NetnsRefused')[0]!.message, /outside the netns dir|does not resolve to a file/);
    t.equal(await rig.metric('ovnkube_route_injector_failures_total', { reason: 'netns-refused' }), 2);
    t.equal(
      execFileSync('ip', ['-j', 'route', 'show', 'table', 'main'], { encoding: 'utf8' }),
      before,
      'the host routing table is unchanged',
    );
    const st = decodeInjectorStatus(rig.api.pods.get(hostPod.metadata!.uid!)?.metadata?.annotations?.[STATUS_ANNOTATION]);
    t.match(st, { plan: '', applied: 0, skipped: [{ dst: '*', reason: 'netns-refused' }] }, 'the refusal is in the status report');
  });

  t.test('netns annotation fallback: used only when the netns holds the pod IP', async (t) => {
    const KEY = 'example.com/netns';
    const rig = await startRig(t, { netnsAnnotation: KEY });
    const { pod: ns } = makePod(t);
    const { pod: other } = makePod(t);
    other.ip('addr', 'del', '10.244.1.5/32', 'dev', 'eth0');
    other.ip('addr', 'add', '10.244.9.9/32', 'dev', 'eth0');
    // A pod whose author points the annotation at someone else's netns.
    const thief = rig.apply(
      makePodObject({ name: 'thief', plan: MISSION_PLAN, key: rig.key, annotations: { [KEY]: other.path }, podIPs: ['10.244.1.5'] }),
    );
    // A pod without an IP yet waits; then the kubelet reports it and the check passes.
    const good = rig.apply(makePodObject({ name: 'good', plan: MISSION_PLAN, key: rig.key, annotations: { [KEY]: ns.path } }));
    await until('thief refused', () => rig.api.eventsOf(thief.metadata!.uid!, 'NetnsRefused').length === 1);
    t.match(rig.api.eventsOf(thief.metadata!.uid!, 'NetnsRefused')[0]!.message, /holds none of the pod's IPs/);
    t.same(ownedLines(routeLines(other)), [], 'nothing written into the other netns');
    await rig.agent.settled();
    t.same(ownedLines(routeLines(ns)), [], 'no routes before the pod IP is known');
    const withIP = structuredClone(good);
    withIP.status = { phase: 'Running', podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }] } as Pod['status'];
    rig.apply(withIP);
    await until('plan routes in the netns', () => ownedLines(routeLines(ns)).length === WANT.length);
    t.equal(rig.agent.view(good.metadata!.uid!)?.source, 'annotation');
  });
});
