// End to end against the real control plane: the built `ovnkube-route webhook` command (the
// admission webhook and, in the same process, the leader-elected controller) with certs from
// certs/gen.sh, registered through deploy/webhook-config.yaml pointed at 127.0.0.1 over
// HTTPS, running as the ServiceAccount of deploy/webhook-rbac.yaml (so deploy/'s RBAC is
// shown to be enough). No scheduler or kubelet runs, so pods stay Pending; the injector's report is
// simulated by writing its status annotation. One control plane for the whole file.
import t, { type Test } from 'tap';
import { encodeInjectorStatus } from '../../core/injector-status.js';
import { podIntent } from '../../injector/pod.js';
import { controllerApi } from '../../webhook/controller/controller.js';
import { planPatch } from '../../webhook/controller/patch.js';
import { classifyApiError } from '../../platform/api-errors.js';
import { slimPod } from '../../webhook/caches/pods.js';
import { encodePlan, planHash, planKeyFromSecret } from '../../core/plan-codec.js';
import { INJECT_LABEL, PLAN_ANNOTATION, READINESS_GATE_LABEL, READY_CONDITION, STATUS_ANNOTATION, type Pod } from '../../core/types.js';
import { kubeRequest } from '../cluster/k8s.js';
import { withControlPlane } from '../cluster/tap.js';
import {
  applyRoute,
  createNamespace,
  createPod,
  deleteRoute,
  expectStatus,
  getPod,
  getRoute,
  installAddon,
  planAnnotation,
  planRoutes,
  podBody,
  registerWebhook,
  startWebhook,
  until,
  verifyPlan,
  type WebhookProcess,
} from './helpers.js';

const MAIN = 'e2e-main';
const OPTOUT = 'e2e-optout';
const GEN = 'e2e-gen';
const mainSpec = {
  include: [{ namespaces: [MAIN, OPTOUT] }],
  route: [{ dst: '172.16.10.0/24', dev: 'eth1' }],
  svc: [{ namespace: MAIN, name: 'later', dev: 'eth1' }],
};

const cp = await withControlPlane(t);
if (cp) {
  const { kc } = cp;
  const started = Date.now();
  const { certDir, keys, kubeconfig, user } = await installAddon(t, cp);
  // Short leader-election timings so a restarted process leads again quickly; the controller's
  // own identity is trusted, as deploy/webhook-deployment.yaml does.
  const args = ['--lease-duration', '4s', '--renew-deadline', '3s', '--retry-period', '500ms', '--trusted-user', user];
  let wh: WebhookProcess = await startWebhook({ kubeconfig, certDir, args });
  t.teardown(() => wh.stop('SIGKILL'));
  await registerWebhook(kc, wh.port, certDir);
  await createNamespace(kc, MAIN);
  await createNamespace(kc, OPTOUT, { [INJECT_LABEL]: 'disabled' });
  await createNamespace(kc, GEN);
  await applyRoute(kc, 'main', mainSpec);
  await applyRoute(kc, 'gen', { include: [{ pods: [`${GEN}/gen*-*`] }], route: [{ dst: '10.200.0.0/16', dev: 'eth1' }] });
  // The webhook configuration and the Routes reach the API server's and our caches through
  // informers: dry-run creations until a pod comes back stamped.
  await until('the webhook stamps pods', async () => {
    const res = await kubeRequest(kc, 'POST', `/api/v1/namespaces/${MAIN}/pods`, { body: podBody('probe'), query: { dryRun: 'All' } });
    return planRoutes(res.body as Pod, keys)?.includes('172.16.10.0/24 eth1');
  });
  t.comment(`set-up took ${((Date.now() - started) / 1000).toFixed(1)} s`);

  /** Run a step; on failure, show the webhook process's last log lines. */
  const step = (name: string, fn: (t: Test) => Promise<void>) =>
    t.test(name, async (t) => {
      try {
        await fn(t);
      } catch (e) {
        t.comment(
          wh.logs
            .slice(-30)
            .map((l) => JSON.stringify(l))
            .join('\n'),
        );
        throw e;
      }
    });
  const mainPods = ['p1', 'gated', 'forged'];
  let serviceIP = '';

  await step('pods created in a namespace get their signed plan at admission (and the readiness gate when asked)', async (t) => {
    const p1 = await createPod(kc, MAIN, podBody('p1'));
    t.same(planRoutes(p1, keys), ['172.16.10.0/24 eth1'], 'stamped at creation, verifies as the injector checks it');
    const gated = await createPod(kc, MAIN, podBody('gated', { labels: { [READINESS_GATE_LABEL]: 'true' } }));
    t.same(gated.spec?.readinessGates, [{ conditionType: READY_CONDITION }], 'readiness gate added');
    t.ok(planRoutes(gated, keys), 'and a plan');
    t.notOk(p1.spec?.readinessGates, 'no gate unless asked');
  });

  await step('an opted-out namespace, an opted-out pod and a hostNetwork pod get none', async (t) => {
    t.equal(planAnnotation(await createPod(kc, OPTOUT, podBody('o1'))), undefined, 'namespace labelled inject=disabled');
    t.equal(
      planAnnotation(await createPod(kc, MAIN, podBody('optout-pod', { labels: { [INJECT_LABEL]: 'disabled' } }))),
      undefined,
      'pod labelled inject=disabled',
    );
    t.equal(planAnnotation(await createPod(kc, MAIN, podBody('hostnet', { hostNetwork: true }))), undefined, 'hostNetwork');
  });

  await step('a forged plan never survives admission (CREATE or UPDATE)', async (t) => {
    const other = planKeyFromSecret(Buffer.alloc(32, 1));
    const forged = encodePlan({ v: 1, routes: [{ dst: '0.0.0.0/1', dev: 'eth1' }] }, { key: other, namespace: MAIN });
    t.match(
      verifyPlan({ metadata: { namespace: MAIN, annotations: { [PLAN_ANNOTATION]: forged } } }, keys),
      { ok: false, code: 'unknown-key' },
      'the injector would refuse it',
    );
    const created = await createPod(kc, MAIN, podBody('forged', { annotations: { [PLAN_ANNOTATION]: forged } }));
    t.same(planRoutes(created, keys), ['172.16.10.0/24 eth1'], 'replaced by the real plan on CREATE');
    const patched = expectStatus(
      await kubeRequest(kc, 'PATCH', `/api/v1/namespaces/${MAIN}/pods/p1`, {
        contentType: 'application/merge-patch+json',
        body: { metadata: { annotations: { [PLAN_ANNOTATION]: forged } } },
      }),
      [200],
      'forge p1',
    ).body as Pod;
    t.same(planRoutes(patched, keys), ['172.16.10.0/24 eth1'], 'and on UPDATE');
  });

  await step('Route status: Degraded while a referenced Service is missing; matched and applied pods', async (t) => {
    const r = await until('main status counts the three stamped pods', async () => {
      const r = await getRoute(kc, 'main');
      return r.status?.matchedPods === mainPods.length && r.status?.status === 'Degraded' ? r : null;
    });
    t.match(r.status, {
      status: 'Degraded',
      observedGeneration: r.metadata.generation,
      matchedPods: 3,
      appliedPods: 0,
      unresolvedServices: [{ namespace: MAIN, name: 'later', reason: 'Service not found' }],
      conflicts: [],
    });
    t.match(r.status.conditions, [
      { type: 'Ready', status: 'True' },
      { type: 'Degraded', status: 'True', reason: 'UnresolvedServices' },
    ]);
    // The injector's report on p1: the current plan, fully applied.
    const p1 = await getPod(kc, MAIN, 'p1');
    const plan = verifyPlan(p1, keys);
    if (!plan?.ok) throw new Error('p1 has no verified plan');
    const report = encodeInjectorStatus({
      plan: planHash(plan.plan),
      applied: plan.plan.routes.length,
      skipped: [],
      node: 'node-1',
      time: new Date().toISOString(),
    });
    expectStatus(
      await kubeRequest(kc, 'PATCH', `/api/v1/namespaces/${MAIN}/pods/p1`, {
        contentType: 'application/merge-patch+json',
        body: { metadata: { annotations: { [STATUS_ANNOTATION]: report } } },
      }),
      [200],
      'report on p1',
    );
    await until('appliedPods counts p1', async () => (await getRoute(kc, 'main')).status?.appliedPods === 1);
    t.pass('appliedPods: 1');
  });

  await step('a referenced Service created later adds its /32 to the plans', async (t) => {
    const svc = expectStatus(
      await kubeRequest(kc, 'POST', `/api/v1/namespaces/${MAIN}/services`, {
        body: { metadata: { name: 'later' }, spec: { ports: [{ port: 80 }] } },
      }),
      [201],
      'create Service later',
    ).body;
    serviceIP = svc.spec.clusterIP;
    t.match(serviceIP, /^10\.96\./, 'a ClusterIP from the harness range');
    for (const name of mainPods) {
      await until(`${name} gets ${serviceIP}/32`, async () =>
        planRoutes(await getPod(kc, MAIN, name), keys)?.includes(`${serviceIP}/32 eth1`),
      );
    }
    const r = await until('main turns Active', async () => {
      const r = await getRoute(kc, 'main');
      return r.status?.status === 'Active' ? r : null;
    });
    t.same(r.status.unresolvedServices, []);
    t.equal(r.status.appliedPods, 0, "p1's report is for the old plan now");
    t.ok(
      (await wh.metric('ovnkube_route_controller_pods_patched_total', { action: 'set', previous: 'ours' })) >= 3,
      'the controller re-stamped them',
    );
  });

  await step("editing a Route re-stamps existing pods, and the controller's patches are not admitted again", async (t) => {
    const admitted = await wh.metric('ovnkube_route_webhook_requests_total');
    const patched = await wh.metric('ovnkube_route_controller_pods_patched_total');
    await applyRoute(kc, 'main', { ...mainSpec, route: [...mainSpec.route, { dst: '172.16.20.0/24', dev: 'eth0' }] });
    for (const name of mainPods) {
      const routes = await until(`${name} gets 172.16.20.0/24`, async () => {
        const r = planRoutes(await getPod(kc, MAIN, name), keys);
        return r?.includes('172.16.20.0/24 eth0') ? r : null;
      });
      t.same(routes, [`${serviceIP}/32 eth1`, '172.16.10.0/24 eth1', '172.16.20.0/24 eth0'], `${name}: whole plan, sorted by destination`);
    }
    // The API server asks the webhook before it stores a patch, so once the patched pods are
    // seen, an admission of those patches would have been counted: deploy/webhook-config.yaml's
    // matchConditions leave out the controller's ServiceAccount (everyone else is admitted:
    // the forged-plan step above).
    t.ok((await wh.metric('ovnkube_route_controller_pods_patched_total')) >= patched + mainPods.length, 'the controller patched them');
    t.equal(await wh.metric('ovnkube_route_webhook_requests_total'), admitted, 'with no admission request for its own patches');
    const r = await until('observedGeneration follows', async () => {
      const r = await getRoute(kc, 'main');
      return r.status?.observedGeneration === r.metadata.generation ? r : null;
    });
    t.equal(r.status.conditions[0].observedGeneration, r.metadata.generation);
  });

  await step('conflicts: listed on both Routes, the loser Degraded with one Event', async (t) => {
    await applyRoute(kc, 'rival', { include: [{ namespaces: [MAIN] }], priority: 10, route: [{ dst: '172.16.10.0/24', dev: 'eth0' }] });
    await until('p1 follows the higher-priority Route', async () =>
      planRoutes(await getPod(kc, MAIN, 'p1'), keys)?.includes('172.16.10.0/24 eth0'),
    );
    const main = await until('main lists the conflict', async () => {
      const r = await getRoute(kc, 'main');
      return r.status?.conflicts?.length ? r : null;
    });
    t.match(main.status, { status: 'Degraded', conflicts: [{ dst: '172.16.10.0/24', route: 'main', winner: 'rival' }] });
    t.match(main.status.conditions[1], { type: 'Degraded', reason: 'ConflictsLost' });
    const rival = await until('rival lists it too', async () => {
      const r = await getRoute(kc, 'rival');
      return r.status?.conflicts?.length ? r : null;
    });
    t.match(rival.status, { status: 'Active', matchedPods: 3 });
    const events = async () =>
      expectStatus(
        await kubeRequest(kc, 'GET', '/api/v1/namespaces/default/events', {
          query: { fieldSelector: 'involvedObject.name=main,reason=RouteConflict' },
        }),
        [200],
        'list events',
      ).body.items as any[];
    const ev = await until('a RouteConflict Event on main', async () => (await events())[0]);
    t.match(ev, {
      type: 'Warning',
      involvedObject: { kind: 'Route', apiVersion: 'k8s.ovn.org/v1', uid: main.metadata.uid },
      message: /Route rival .* wins/,
    });
    await deleteRoute(kc, 'rival');
    await until('p1 back on eth1', async () => planRoutes(await getPod(kc, MAIN, 'p1'), keys)?.includes('172.16.10.0/24 eth1'));
    await until('main Active again', async () => (await getRoute(kc, 'main')).status?.status === 'Active');
    t.equal((await events()).length, 1, 'one Event for the conflict, however often status was recomputed');
  });

  await step(
    'safe defaults: a default route moving Service traffic and a literal OVN gateway are warned about (status, Events)',
    async (t) => {
      // The cluster DNS Service, as every cluster has it (its ClusterIP from the harness range).
      expectStatus(
        await kubeRequest(kc, 'POST', '/api/v1/namespaces/kube-system/services', {
          body: { metadata: { name: 'kube-dns' }, spec: { ports: [{ port: 53, protocol: 'UDP' }] } },
        }),
        [201, 409],
        'create kube-system/kube-dns',
      );
      // Selects no pod (the warnings are about the Route itself), so no other step is affected.
      await applyRoute(kc, 'moves-default', { include: [{ namespaces: ['nowhere'] }], defaultRoute: { dev: 'eth1', via: '10.124.2.1' } });
      const r = await until('moves-default has a Warnings condition', async () => {
        const r = await getRoute(kc, 'moves-default');
        return r.status?.conditions?.find((c: { type: string }) => c.type === 'Warnings')?.status === 'True' ? r : null;
      });
      t.equal(r.status.status, 'Active', 'a warning does not degrade the Route');
      t.match(
        r.status.conditions.find((c: { type: string }) => c.type === 'Warnings'),
        {
          reason: 'MultipleWarnings',
          message:
            /moves the pod's default route to eth1: .*kube-dns.*add a rule such as \{dst: <Service CIDR>, dev: eth0, via: gateway\}.*spec\.defaultRoute\.via 10\.124\.2\.1 is one gateway address/,
        },
      );
      const events = async (reason: string) =>
        expectStatus(
          await kubeRequest(kc, 'GET', '/api/v1/namespaces/default/events', {
            query: { fieldSelector: `involvedObject.name=moves-default,reason=${reason}` },
          }),
          [200],
          'list events',
        ).body.items as any[];
      t.match(await until('a DefaultRouteMovesServices Event', async () => (await events('DefaultRouteMovesServices'))[0]), {
        type: 'Warning',
        involvedObject: { kind: 'Route', uid: r.metadata.uid },
      });
      t.ok(await until('a GatewayNotPerNode Event', async () => (await events('GatewayNotPerNode'))[0]), 'GatewayNotPerNode Event');
      // Fixed as docs/routing.md says: the gateway per node, and the Service CIDR kept on eth0.
      await applyRoute(kc, 'moves-default', {
        include: [{ namespaces: ['nowhere'] }],
        defaultRoute: { dev: 'eth1', via: 'gateway' },
        route: [{ dst: '10.96.0.0/12', dev: 'eth0', via: 'gateway' }],
      });
      const fixed = await until('the warnings clear', async () => {
        const r = await getRoute(kc, 'moves-default');
        return r.status?.observedGeneration === r.metadata.generation &&
          r.status?.conditions?.find((c: { type: string }) => c.type === 'Warnings')?.status === 'False'
          ? r
          : null;
      });
      t.match(
        fixed.status.conditions.find((c: { type: string }) => c.type === 'Warnings'),
        { reason: 'None' },
      );
      await deleteRoute(kc, 'moves-default');
    },
  );

  await step('a generateName pod whose Route depends on the final name is resolved again once it exists', async (t) => {
    const created = await createPod(kc, GEN, podBody({ generateName: 'gen-' }));
    t.equal(planAnnotation(created), undefined, 'admission could not decide (name unknown)');
    const name = created.metadata!.name!;
    t.match(name, /^gen-/);
    const routes = await until(`${name} stamped by the controller`, async () => planRoutes(await getPod(kc, GEN, name), keys));
    t.same(routes, ['10.200.0.0/16 eth1']);
  });

  await step('with the webhook stopped, pods are still created, and the controller then backfills and corrects them', async (t) => {
    const port = wh.port;
    t.equal(await wh.stop('SIGTERM'), 0, 'clean exit on SIGTERM');
    const lease = expectStatus(
      await kubeRequest(kc, 'GET', '/apis/coordination.k8s.io/v1/namespaces/ovnkube-route/leases/ovnkube-route-controller'),
      [200],
      'get Lease',
    ).body;
    t.notOk(lease.spec.holderIdentity, 'the leader released the Lease on the way out');

    const forged = encodePlan({ v: 1, routes: [{ dst: '0.0.0.0/1', dev: 'eth1' }] }, { namespace: MAIN });
    const down1 = await createPod(kc, MAIN, podBody('down1'));
    const down2 = await createPod(kc, MAIN, podBody('down2', { annotations: { [PLAN_ANNOTATION]: forged } }));
    await createPod(kc, OPTOUT, podBody('down3', { annotations: { [PLAN_ANNOTATION]: forged } }));
    const down4 = await createPod(kc, GEN, podBody({ generateName: 'gen-' }));
    t.equal(planAnnotation(down1), undefined, 'failurePolicy Ignore: created without a plan');
    t.equal(planAnnotation(down2), forged, 'the forged plan went in');
    t.match(podIntent(down2, keys), { kind: 'rejected', code: 'unsigned' }, "and the injector's verification refuses it");
    t.equal(planAnnotation(down4), undefined);

    wh = await startWebhook({ kubeconfig, certDir, args, port });
    const full = [`${serviceIP}/32 eth1`, '172.16.10.0/24 eth1', '172.16.20.0/24 eth0'];
    t.same(await until('down1 backfilled', async () => planRoutes(await getPod(kc, MAIN, 'down1'), keys)), full);
    t.same(
      await until('down2 corrected', async () => planRoutes(await getPod(kc, MAIN, 'down2'), keys)),
      full,
      'forged plan replaced by a verified one',
    );
    t.match(podIntent(await getPod(kc, MAIN, 'down2'), keys), { kind: 'plan' }, 'which the injector accepts');
    await until('down3 (opted out) loses the forged plan', async () => planAnnotation(await getPod(kc, OPTOUT, 'down3')) === undefined);
    t.same(await until('down4 stamped', async () => planRoutes(await getPod(kc, GEN, down4.metadata!.name!), keys)), [
      '10.200.0.0/16 eth1',
    ]);
    t.equal(
      await wh.metric('ovnkube_route_controller_pods_patched_total', { previous: 'foreign' }),
      2,
      'two foreign plans corrected (down2 set, down3 removed)',
    );
    t.equal(await wh.metric('ovnkube_route_controller_leader'), 1, 'the restarted process leads');
  });

  await step('the guard on the real API server: a patch computed from a stale pod is refused as a conflict', async (t) => {
    const api = controllerApi(kc);
    const stale = slimPod(await getPod(kc, MAIN, 'optout-pod'));
    // The pod changes after we looked (a label), so its resourceVersion moves on.
    expectStatus(
      await kubeRequest(kc, 'PATCH', `/api/v1/namespaces/${MAIN}/pods/optout-pod`, {
        contentType: 'application/merge-patch+json',
        body: { metadata: { labels: { touched: 'yes' } } },
      }),
      [200],
      'touch optout-pod',
    );
    const err = await api.patchPod(MAIN, 'optout-pod', planPatch(stale, 'x')!).then(
      () => null,
      (e: unknown) => e,
    );
    t.match(classifyApiError(err), { action: 'retry', reason: 'conflict', status: 422 });
    t.equal(planAnnotation(await getPod(kc, MAIN, 'optout-pod')), undefined, 'nothing was written');
    const gone = await api.patchPod(MAIN, 'no-such-pod', planPatch(stale, 'x')!).then(
      () => null,
      (e: unknown) => e,
    );
    t.match(classifyApiError(gone), { action: 'gone', status: 404 });
  });

  await step('after the controller went over every pod, opted-out and hostNetwork pods still carry no plan', async (t) => {
    const all = expectStatus(await kubeRequest(kc, 'GET', '/api/v1/pods'), [200], 'list pods').body.items as Pod[];
    await until(
      'every pod reconciled and the queue drained',
      async () =>
        (await wh.metric('ovnkube_route_controller_reconcile_duration_seconds_count')) >= all.length &&
        (await wh.metric('ovnkube_route_controller_queue_depth')) === 0,
    );
    t.equal(planAnnotation(await getPod(kc, OPTOUT, 'o1')), undefined, 'opted-out namespace');
    t.equal(planAnnotation(await getPod(kc, MAIN, 'optout-pod')), undefined, 'opted-out pod');
    t.equal(planAnnotation(await getPod(kc, MAIN, 'hostnet')), undefined, 'hostNetwork pod');
    // Status is written at most once a second after the pods it counts were reconciled.
    const main = await until('main counts the backfilled pods', async () => {
      const r = await getRoute(kc, 'main');
      return r.status?.matchedPods === 5 ? r : null;
    });
    t.match(main.status, { status: 'Active', matchedPods: 5, appliedPods: 0 }, 'p1, gated, forged, down1, down2');
    t.equal(await wh.metric('ovnkube_route_controller_patch_failures_total', { reason: 'forbidden' }), 0, 'RBAC: no pod patch forbidden');
    t.equal(await wh.metric('ovnkube_route_cache_watch_errors_total'), 0, 'RBAC: every cache lists and watches');
    t.notOk(
      wh.logs.some((l) => /forbidden/i.test(JSON.stringify(l))),
      'nothing forbidden in the logs (Lease, status, Events)',
    );
  });

  t.comment(`whole file: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
