// Edges of admission through app.inject: caches not synced yet, the readiness gate,
// requests that are not pod CREATE/UPDATE, malformed content inside a valid envelope,
// plans too large to encode, envelope errors (400 with a code), /readyz and /metrics,
// and the validation of buildApp's options.
import t from 'tap';
import { Registry } from 'prom-client';
import { encodePlan } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, READINESS_GATE_LABEL, READY_CONDITION, type KubeObject, type Pod, type Route } from '../../core/types.js';
import { buildApp, type AppOptions } from '../../webhook/admission/server.js';
import { CACHED_RESOURCES, ClusterCaches, cachesFromObjects } from '../../webhook/caches/caches.js';
import type { AdmissionReview } from '../../webhook/admission/review.js';
import { ObjectStore } from '../../webhook/caches/store.js';
import { memoryLogger } from '../../platform/log.js';
import { annotate, applyResponse, clusterCaches, clusterObjects, loadReview, patchOps, reviewWith, testKey } from './helpers.js';

const key = testKey();
const keys = [key];
const registry = new Registry();
const caches = clusterCaches();
const app = buildApp({
  admit: { caches, mode: 'default', keys },
  readiness: () => ({ ready: caches.isSynced(), detail: 'x' }),
  registry,
  cacheGauges: caches,
});
t.teardown(() => app.close());

async function post(review: unknown, on = app): Promise<AdmissionReview> {
  const res = await on.inject({ method: 'POST', url: '/mutate', payload: review as object });
  if (res.statusCode !== 200) throw new Error(`/mutate answered ${res.statusCode}: ${res.body}`);
  return res.json() as AdmissionReview;
}
const planOf = (p: Pod) => p.metadata?.annotations?.[PLAN_ANNOTATION];
const removeOp = [{ op: 'remove', path: '/metadata/annotations/routes.k8s.ovn.org~1plan' }];

t.test('before the caches sync, only signatures are enforced and /readyz says not ready', async (t) => {
  const stores = Object.fromEntries(CACHED_RESOURCES.map((r) => [r, new ObjectStore<KubeObject>(r)])) as ConstructorParameters<
    typeof ClusterCaches
  >[0];
  const unsynced = new ClusterCaches(stores);
  const u = buildApp({
    admit: { caches: unsynced, mode: 'default', keys },
    readiness: () => ({ ready: unsynced.isSynced(), detail: 'caches not synced' }),
    registry: new Registry(),
  });
  t.teardown(() => u.close());
  const ready = await u.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 503, '/readyz is 503');
  t.match(ready.body, /not ready: caches not synced/);
  t.equal((await u.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, '/healthz is 200 all the same');

  const valid = encodePlan({ v: 1, routes: [{ dst: '172.16.10.0/24', dev: 'eth1' }] }, { key, namespace: 'default' });
  const forged = JSON.stringify({ v: 1, routes: [{ dst: '0.0.0.0/0', dev: 'eth1' }] });
  const create = (v: string | undefined) => reviewWith('review-create-replicaset-pod.json', (p) => annotate(p, PLAN_ANNOTATION, v));
  t.same(patchOps((await post(create(undefined), u)).response), [], 'CREATE without a plan: no patch (the controller stamps it later)');
  t.same(patchOps((await post(create(forged), u)).response), removeOp, 'CREATE with a forged plan: removed');
  t.same(
    patchOps((await post(create(valid), u)).response),
    removeOp,
    'CREATE with a valid-looking plan: removed (nothing is computed yet)',
  );
  const update = (now: string | undefined, before: string | undefined) =>
    reviewWith(
      'review-update-pod.json',
      (p) => annotate(p, PLAN_ANNOTATION, now),
      (o) => annotate(o, PLAN_ANNOTATION, before),
    );
  t.same(patchOps((await post(update(valid, valid), u)).response), [], 'UPDATE keeping a verified plan: no patch');
  t.same(
    patchOps((await post(update(forged, valid), u)).response),
    [{ op: 'replace', path: '/metadata/annotations/routes.k8s.ovn.org~1plan', value: valid }],
    'UPDATE writing a forged plan: the previous one is restored',
  );
  t.same(patchOps((await post(update(forged, forged), u)).response), removeOp, 'UPDATE of a pod carrying a forged plan: removed');
});

t.test('the readiness gate is added on CREATE when the label asks for it and the pod gets a plan', async (t) => {
  const gated = (p: Pod) => {
    p.metadata!.labels![READINESS_GATE_LABEL] = 'true';
  };
  const review = reviewWith('review-create-replicaset-pod.json', gated);
  const answer = await post(review);
  const pod = applyResponse(review.request.object, answer);
  t.same(pod.spec?.readinessGates, [{ conditionType: READY_CONDITION }], 'gate added');
  t.ok(planOf(pod), 'plan stamped');
  t.same(patchOps((await post({ ...review, request: { ...review.request, object: pod } })).response), [], 'reinvocation: no patch');
  const host = reviewWith('review-create-replicaset-pod.json', (p) => {
    gated(p);
    p.spec!.hostNetwork = true;
  });
  t.same(patchOps((await post(host)).response), [], 'no gate for a pod that gets no plan (nothing would ever satisfy it)');
  const upd = reviewWith('review-update-pod.json', gated, () => {});
  t.notOk(applyResponse(upd.request.object, await post(upd)).spec?.readinessGates, 'no gate on UPDATE (readinessGates are immutable)');
  const kept = reviewWith('review-create-replicaset-pod.json', (p) => {
    gated(p);
    p.spec!.readinessGates = [{ conditionType: 'example.com/other' }];
  });
  t.same(
    applyResponse(kept.request.object, await post(kept)).spec?.readinessGates,
    [{ conditionType: 'example.com/other' }, { conditionType: READY_CONDITION }],
    'existing gates kept, ours appended',
  );
});

t.test('requests that are not pod CREATE/UPDATE are allowed untouched', async (t) => {
  const cases: [string, (r: ReturnType<typeof loadReview>) => void][] = [
    [
      'a Deployment',
      (r) => {
        r.request.kind = { group: 'apps', version: 'v1', kind: 'Deployment' };
      },
    ],
    [
      'no request.kind',
      (r) => {
        delete r.request.kind;
      },
    ],
    [
      'the pods/status subresource',
      (r) => {
        r.request.subResource = 'status';
      },
    ],
    [
      'a DELETE',
      (r) => {
        r.request.operation = 'DELETE';
      },
    ],
    [
      'a CONNECT',
      (r) => {
        r.request.operation = 'CONNECT';
      },
    ],
  ];
  for (const [what, edit] of cases) {
    const r = reviewWith('review-create-replicaset-pod.json', (p) => annotate(p, PLAN_ANNOTATION, 'forged'));
    edit(r);
    const answer = await post(r);
    t.equal(answer.response?.uid, r.request.uid, `${what}: uid echoed`);
    t.equal(answer.response?.allowed, true, `${what}: allowed`);
    t.notOk(answer.response?.patch, `${what}: no patch`);
  }
});

t.test('malformed content inside a valid envelope fails open with a code and message', async (t) => {
  const cases: [string, (r: ReturnType<typeof loadReview>) => void, RegExp][] = [
    [
      'no object',
      (r) => {
        delete r.request.object;
      },
      /request\.object: expected the Pod object/,
    ],
    [
      'object is a string',
      (r) => {
        r.request.object = 'pod';
      },
      /request\.object/,
    ],
    [
      'metadata is an array',
      (r) => {
        (r.request.object as { metadata: unknown }).metadata = [];
      },
      /metadata: expected an object/,
    ],
    [
      'annotations is a string',
      (r) => {
        (r.request.object as Pod).metadata!.annotations = 'x' as never;
      },
      /annotations: expected a map/,
    ],
    [
      'no namespace anywhere',
      (r) => {
        delete r.request.namespace;
        delete (r.request.object as Pod).metadata!.namespace;
      },
      /must name its namespace/,
    ],
    // Issue #16, defect 9: these were answered as internal errors (code 500).
    [
      'ownerReferences holds null',
      (r) => {
        (r.request.object as Pod).metadata!.ownerReferences = [null as never];
      },
      /^request\.object\.metadata\.ownerReferences\[0\]: expected an owner reference object \(kind, name, \.\.\.\), got null$/,
    ],
    [
      'ownerReferences after a good one holds null',
      (r) => {
        (r.request.object as Pod).metadata!.ownerReferences!.push(null as never);
      },
      /^request\.object\.metadata\.ownerReferences\[1\]: expected an owner reference object/,
    ],
    [
      'ownerReferences is an object',
      (r) => {
        (r.request.object as Pod).metadata!.ownerReferences = { kind: 'ReplicaSet' } as never;
      },
      /^request\.object\.metadata\.ownerReferences: expected a list of owner references/,
    ],
    [
      'owner kind is a number',
      (r) => {
        (r.request.object as Pod).metadata!.ownerReferences = [{ kind: 7, name: 'x' } as never];
      },
      /^request\.object\.metadata\.ownerReferences\[0\]\.kind: expected a string, got 7$/,
    ],
    [
      'labels is a list',
      (r) => {
        (r.request.object as Pod).metadata!.labels = ['app'] as never;
      },
      /^request\.object\.metadata\.labels: expected a map of strings/,
    ],
    [
      'a label value is null',
      (r) => {
        (r.request.object as Pod).metadata!.labels = { app: null } as never;
      },
      /^request\.object\.metadata\.labels\["app"\]: expected a string value, got null$/,
    ],
  ];
  for (const [what, edit, msg] of cases) {
    const r = loadReview('review-create-replicaset-pod.json');
    edit(r);
    const answer = await post(r);
    t.equal(answer.response?.allowed, true, `${what}: allowed (fail open)`);
    t.equal(answer.response?.status?.code, 400, `${what}: status code 400`);
    t.match(answer.response?.status?.message, msg, `${what}: message says what was expected`);
    t.notOk(answer.response?.patch, `${what}: no patch`);
  }
});

t.test('a plan too large to encode is never truncated: the pod gets none', async (t) => {
  // Two Routes of 300 distinct /32s each: 600 routes, over the codec's 512.
  const big = (name: string, base: number): Route => ({
    metadata: { name },
    spec: { route: Array.from({ length: 300 }, (_, i) => ({ dst: `10.${base}.${i >> 8}.${i & 255}/32`, dev: 'eth1' })) },
  });
  const c = cachesFromObjects({ ...clusterObjects(), routes: [big('big-a', 1), big('big-b', 2)] });
  const r = new Registry();
  const a = buildApp({ admit: { caches: c, mode: 'default', keys }, readiness: () => ({ ready: true, detail: '' }), registry: r });
  t.teardown(() => a.close());
  const answer = await post(
    reviewWith('review-create-replicaset-pod.json', (p) => annotate(p, PLAN_ANNOTATION, 'forged')),
    a,
  );
  t.same(patchOps(answer.response), removeOp, 'no plan; the forged one removed');
  t.match(await r.metrics(), /ovnkube_route_webhook_plans_skipped_total\{reason="encode-error"\} 1/, 'counted as encode-error');
});

t.test('envelope errors are 400s with a code and a message, and the app keeps serving', async (t) => {
  const base = loadReview('review-create-replicaset-pod.json');
  const cases: [string, unknown, string, RegExp][] = [
    ['v1beta1', { ...base, apiVersion: 'admission.k8s.io/v1beta1' }, 'OVNKR_REVIEW_V1BETA1', /admissionReviewVersions: \["v1"\]/],
    ['another version', { ...base, apiVersion: 'admission.k8s.io/v2' }, 'OVNKR_REVIEW_WRONG_VERSION', /expected "admission.k8s.io\/v1"/],
    ['the wrong kind', { ...base, kind: 'Pod' }, 'OVNKR_REVIEW_WRONG_KIND', /expected "AdmissionReview", got "Pod"/],
    ['no request', { apiVersion: base.apiVersion, kind: base.kind }, 'OVNKR_REVIEW_NO_REQUEST', /\.request: expected/],
    [
      'a missing uid',
      { ...base, request: { ...base.request, uid: undefined } },
      'OVNKR_REVIEW_NO_UID',
      /\.request\.uid: expected a non-empty string/,
    ],
    ['an empty uid', { ...base, request: { ...base.request, uid: '' } }, 'OVNKR_REVIEW_NO_UID', /got ""/],
    ['an array', [base], 'OVNKR_REVIEW_NOT_OBJECT', /got an array/],
  ];
  for (const [what, body, code, msg] of cases) {
    const res = await app.inject({ method: 'POST', url: '/mutate', payload: body as object });
    t.equal(res.statusCode, 400, `${what}: 400`);
    t.equal(res.json().code, code, `${what}: code ${code}`);
    t.match(res.json().message, msg, `${what}: message`);
  }
  const bad = await app.inject({
    method: 'POST',
    url: '/mutate',
    headers: { 'content-type': 'application/json' },
    payload: '{"kind":"AdmissionReview",',
  });
  t.equal(bad.statusCode, 400, 'malformed JSON: 400');
  t.equal(bad.json().code, 'FST_ERR_CTP_INVALID_JSON_BODY', "with fastify's code");
  const text = await app.inject({ method: 'POST', url: '/mutate', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
  t.equal(text.statusCode, 415, 'a text body: 415');
  const ok = await post(loadReview('review-create-replicaset-pod.json'));
  t.ok(ok.response?.patch, 'the next good request is answered normally');
});

t.test('/metrics reports requests by outcome, plans, and cache sizes', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/plain/);
  const m = res.body;
  const value = (re: RegExp) => Number(re.exec(m)?.[1] ?? NaN);
  t.ok(value(/ovnkube_route_webhook_requests_total\{outcome="patched"\} (\d+)/) >= 3, 'patched requests counted');
  t.ok(value(/ovnkube_route_webhook_requests_total\{outcome="bad-request"\} (\d+)/) >= 8, 'bad requests counted');
  t.equal(value(/ovnkube_route_webhook_requests_total\{outcome="unsupported-media-type"\} (\d+)/), 1, 'the 415 counted');
  t.ok(value(/ovnkube_route_webhook_requests_total\{outcome="ignored"\} (\d+)/) >= 5, 'ignored requests counted');
  t.ok(value(/ovnkube_route_webhook_requests_total\{outcome="failed-open"\} (\d+)/) >= 5, 'failed-open requests counted');
  t.match(
    m,
    /ovnkube_route_webhook_request_duration_seconds_bucket\{le="[0-9.e+-]+",outcome="patched"\} \d+/,
    'latency histogram by outcome',
  );
  t.ok(value(/ovnkube_route_webhook_plans_stamped_total (\d+)/) >= 3, 'stamped plans counted');
  t.ok(value(/ovnkube_route_webhook_plans_skipped_total\{reason="host-network"\} (\d+)/) >= 1, 'skips counted by reason');
  t.equal(value(/ovnkube_route_cache_objects\{resource="routes"\} (\d+)/), 2, 'cache sizes: 2 routes');
  t.equal(value(/ovnkube_route_cache_objects\{resource="namespaces"\} (\d+)/), 5, 'cache sizes: 5 namespaces');
  t.equal(value(/ovnkube_route_cache_synced\{resource="services"\} (\d+)/), 1, 'synced flags');
  t.notMatch(m, /process_cpu/, 'only the registry passed in is served (no global default metrics)');
});

t.test('buildApp validates its options and throws coded errors', async (t) => {
  const good: AppOptions = {
    admit: { caches, mode: 'default', keys },
    readiness: () => ({ ready: true, detail: '' }),
    registry: new Registry(),
  };
  const bad: [string, Partial<AppOptions>, RegExp][] = [
    ['a tiny body limit', { bodyLimit: 10 }, /bodyLimit must be >= 1024/],
    ['a fractional timeout', { requestTimeoutMs: 1.5 }, /requestTimeoutMs must be integer/],
    [
      'headers timeout over request timeout',
      { headersTimeoutMs: 20_000, requestTimeoutMs: 10_000 },
      /headersTimeoutMs \(20000\) must not exceed requestTimeoutMs/,
    ],
    ['no plan key', { admit: { caches, mode: 'default', keys: [] } }, /admit\.keys must hold at least one plan key/],
    ['an unknown mode', { admit: { caches, mode: 'sometimes' as never, keys } }, /admit\.mode must be "default" or "opt-in"/],
  ];
  for (const [what, patch, msg] of bad) {
    t.throws(() => buildApp({ ...good, ...patch }), { code: 'OVNKR_ERR_APP_OPTIONS', message: msg }, what);
  }
  const a = buildApp({ ...good, bodyLimit: 1024 });
  t.teardown(() => a.close());
  const res = await a.inject({ method: 'POST', url: '/mutate', payload: loadReview('review-create-replicaset-pod.json') as object });
  t.equal(res.statusCode, 413, 'the bodyLimit given is the one enforced');
  t.equal(res.json().code, 'FST_ERR_CTP_BODY_TOO_LARGE', "with fastify's code");
});

t.test('decisions are logged: a replaced plan at warn with the request, every admission at debug', async (t) => {
  const forged = JSON.stringify({ v: 1, routes: [{ dst: '0.0.0.0/0', dev: 'eth1' }] });
  const create = (v: string | undefined) => reviewWith('review-create-replicaset-pod.json', (p) => annotate(p, PLAN_ANNOTATION, v));
  for (const level of ['info', 'debug'] as const) {
    const logger = memoryLogger(level);
    const a = buildApp({
      admit: { caches, mode: 'default', keys },
      readiness: () => ({ ready: true, detail: '' }),
      registry: new Registry(),
      logger,
    });
    t.teardown(() => a.close());
    const clean = create(undefined);
    await post(clean, a);
    await post(create(forged), a);
    const admitted = logger.lines.filter((l) => l.msg === 'admitted');
    const warned = logger.lines.filter((l) => l.msg === 'plan annotation corrected or admission failed open');
    t.equal(warned.length, 1, `${level}: the replaced plan is a warning`);
    t.match(warned[0], {
      level: 'warn',
      uid: String,
      namespace: 'default',
      operation: 'CREATE',
      dryRun: false,
      decision: { overwritten: { action: 'replaced', signed: false } },
    });
    if (level === 'info') t.equal(admitted.length, 0, 'info: no line per admission');
    else
      t.match(
        admitted,
        [{ level: 'debug', uid: clean.request.uid, operation: 'CREATE', decision: { outcome: 'patched', plan: 'stamped' } }],
        'debug: a line per admission',
      );
  }
});
