// Namespace opt-out on the real kernel: a pod of a namespace labelled
// routes.k8s.ovn.org/inject=disabled gets no routes even with a validly signed (copied) plan;
// flipping a namespace to disabled removes its pods' routes and restores the saved default
// route, flipping it back re-applies them; until the first namespace list is in (or for a
// namespace not seen yet) a plan is neither applied nor are routes removed.
import t from 'tap';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { planHash } from '../../core/plan-codec.js';
import { INJECT_LABEL, PLAN_ANNOTATION, STATUS_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { makePod, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { makePodObject, MISSION_PLAN, ownedLines, startRig, stateFiles, until, writeCacheFile, type Rig } from './rig.js';

const WITH_DEFAULT: Plan = { ...MISSION_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };
const OURS_DEFAULT = 'default via 10.124.2.1 dev eth1 proto 111';
const ORIGINAL_DEFAULT = 'default via 169.254.1.1 dev eth0';
const DISABLED = { [INJECT_LABEL]: 'disabled' };

const statusOf = (rig: Rig, pod: Pod) =>
  decodeInjectorStatus(rig.api.pods.get(pod.metadata!.uid!)?.metadata?.annotations?.[STATUS_ANNOTATION]);
const uidOf = (pod: Pod): string => pod.metadata!.uid!;

t.test('namespace opt-out', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;

  t.test('a plan copied onto a pod of an opted-out namespace is not applied', async (t) => {
    const rig = await startRig(t, { namespaces: { default: {}, legacy: DISABLED } });
    // What a pod author in "legacy" can do: copy a validly signed plan of another pod of
    // the same namespace (a plan signed for "legacy" verifies for every pod there).
    const { ns: control } = rig.sandbox({ name: 'control', plan: WITH_DEFAULT });
    const { ns, pod } = rig.sandbox({ name: 'copier', namespace: 'legacy', plan: WITH_DEFAULT });
    await until('the control pod of an enabled namespace gets its plan', () => routeLines(control).includes(OURS_DEFAULT));
    await until('the copier was looked at', () => rig.agent.view(uidOf(pod))?.reason === 'namespace-opted-out');
    await until('and reported: no plan in force', () => statusOf(rig, pod)?.plan === '');
    await rig.agent.settled();
    t.same(ownedLines(routeLines(ns)), [], "no routes of ours in the copier's netns");
    t.ok(routeLines(ns).includes(ORIGINAL_DEFAULT), "its default route is the CNI's");
    t.same(rig.api.eventsOf(uidOf(pod)), [], 'no PlanRejected: the plan verifies, it is the namespace that opts out');
    t.equal(stateFiles(rig.stateDir).length, 1, "only the control pod's original default is saved");
  });

  t.test('flipping the namespace to disabled removes the routes; flipping back re-applies them', async (t) => {
    const rig = await startRig(t, { namespaces: { default: {}, apps: {} } });
    const { ns, pod } = rig.sandbox({ name: 'web', namespace: 'apps', plan: WITH_DEFAULT });
    const { ns: other } = rig.sandbox({ name: 'other', plan: MISSION_PLAN });
    await until('plan in place', () => routeLines(ns).includes(OURS_DEFAULT) && ownedLines(routeLines(ns)).length === 6);
    await until("the other namespace's pod has its plan", () => ownedLines(routeLines(other)).length === 5);
    t.equal(stateFiles(rig.stateDir).length, 1, 'original default saved');

    rig.namespace('apps', { team: 'x' }); // a label that does not matter: nothing changes
    await rig.agent.settled();
    t.equal(ownedLines(routeLines(ns)).length, 6, 'an unrelated namespace label changes nothing');

    rig.namespace('apps', { team: 'x', ...DISABLED });
    await until('routes of ours removed', () => ownedLines(routeLines(ns)).length === 0);
    await until('the original default route is back', () => routeLines(ns).includes(ORIGINAL_DEFAULT));
    await until('the empty plan reported', () => statusOf(rig, pod)?.plan === '');
    await rig.agent.settled();
    t.same(stateFiles(rig.stateDir), [], 'nothing saved any more');
    t.match(rig.agent.view(uidOf(pod)), { reason: 'namespace-opted-out', kept: false }, "reason recorded; the empty plan's keeper retired");
    t.ok(rig.api.pods.get(uidOf(pod))?.metadata?.annotations?.[PLAN_ANNOTATION], 'although the pod still carries its plan');
    t.equal(ownedLines(routeLines(other)).length, 5, 'pods of other namespaces keep their routes');
    t.equal(await rig.metric('ovnkube_route_injector_routes_restored_total', { kind: 'default' }), 1, 'counted as a default restore');

    rig.namespace('apps', { team: 'x', [INJECT_LABEL]: 'enabled' });
    await until('plan re-applied', () => routeLines(ns).includes(OURS_DEFAULT) && ownedLines(routeLines(ns)).length === 6);
    await until('reported', () => statusOf(rig, pod)?.plan === planHash(WITH_DEFAULT));
    t.equal(rig.agent.view(uidOf(pod))?.reason, undefined, 'no reason once its plan is in force');
    await until('original default saved again', () => stateFiles(rig.stateDir).length === 1);
  });

  t.test('until the namespace list is in, the netns is left as it is; then it converges', async (t) => {
    const first = await startRig(t);
    const { pod: ns } = makePod(t);
    const { pod: ns2 } = makePod(t);
    const kept = first.apply(makePodObject({ name: 'kept', plan: WITH_DEFAULT, key: first.key }));
    writeCacheFile(first.cacheDir, kept, ns.path);
    await until('plan in place', () => routeLines(ns).includes(OURS_DEFAULT));
    await first.agent.settled();
    const before = routeLines(ns);
    first.stop();

    // The next agent starts while "default" has meanwhile been opted out, and a new pod with
    // a plan arrives; its namespace list is late.
    const second = await startRig(t, {
      cacheDir: first.cacheDir,
      stateDir: first.stateDir,
      keys: [first.key],
      namespacesListed: false,
      namespaces: {},
    });
    second.apply(first.api.pods.get(uidOf(kept))!);
    const fresh = second.apply(makePodObject({ name: 'fresh', plan: MISSION_PLAN, key: first.key }));
    writeCacheFile(second.cacheDir, fresh, ns2.path);
    second.agent.podsSynced();
    await until(
      'both pods looked at',
      () =>
        second.agent.view(uidOf(kept))?.reason === 'namespaces-unsynced' &&
        second.agent.view(uidOf(fresh))?.reason === 'namespaces-unsynced',
    );
    await second.agent.settled();
    t.same(routeLines(ns), before, "the kept pod's routes are left exactly as they were (nothing removed)");
    t.same(ownedLines(routeLines(ns2)), [], "the new pod's plan is not applied");
    t.same(second.api.writes, [], 'nothing reported yet');
    t.equal(stateFiles(second.stateDir).length, 1, 'the saved default stays');

    second.namespace('default', DISABLED);
    second.agent.namespacesSynced();
    await until(
      "the opted-out namespace's routes are removed",
      () => ownedLines(routeLines(ns)).length === 0 && routeLines(ns).includes(ORIGINAL_DEFAULT),
    );
    await until('the saved default is gone', () => stateFiles(second.stateDir).length === 0);
    t.equal(second.agent.view(uidOf(fresh))?.reason, 'namespace-opted-out');
    t.same(ownedLines(routeLines(ns2)), [], 'the new pod never got routes');
  });

  t.test('a pod of a namespace not seen yet waits for it', async (t) => {
    const rig = await startRig(t);
    const { ns, pod } = rig.sandbox({ name: 'early', namespace: 'late', plan: MISSION_PLAN });
    await until('deferred', () => rig.agent.view(uidOf(pod))?.reason === 'namespace-unknown');
    await rig.agent.settled();
    t.same(ownedLines(routeLines(ns)), [], 'no routes while the namespace is unknown');
    rig.namespace('late');
    await until('applied once the namespace shows up', () => ownedLines(routeLines(ns)).length === 5);
    t.pass('applied');
  });
});
