// What a real node showed the rig never could (issue: the real node): while Multus and the
// CNI plugins are still creating a pod's interfaces, a missing or down device is the normal
// course of a start, and a device that appears is the plan taking effect, not drift. Table
// tests of the two pure decisions: podSettling (agent-sync.ts) and isDrift (routes-keeper.ts).
import t from 'tap';
import type { Pod } from '../../core/types.js';
import { podSettling, podTerminating } from '../../injector/agent/sync.js';
import type { ApplyResult } from '../../injector/routes/engine.js';
import { isDrift } from '../../injector/routes/keeper.js';

t.test('podSettling: the kubelet says whether the sandbox network is still being set up', async (t) => {
  const cond = (status: string) => ({ type: 'PodReadyToStartContainers', status });
  const cases: Array<[string, Pod['status'] | undefined, boolean]> = [
    ['no status at all (no kubelet runs for it): not settling', undefined, false],
    ['Pending, no condition, no container status yet (first status not posted)', { phase: 'Pending' }, true],
    ['Pending with PodReadyToStartContainers False (CNI ADD running)', { phase: 'Pending', conditions: [cond('False')] }, true],
    [
      'Pending with PodReadyToStartContainers True (sandbox ready, image starting)',
      { phase: 'Pending', conditions: [cond('True')] },
      false,
    ],
    ['Running with the condition True', { phase: 'Running', conditions: [cond('True')] }, false],
    ['Running, sandbox being recreated (condition False again)', { phase: 'Running', conditions: [cond('False')] }, true],
    ['Pending with container statuses and no condition (older kubelet)', { phase: 'Pending', containerStatuses: [{}] }, false],
    ['Running, no condition (older kubelet)', { phase: 'Running' }, false],
  ];
  for (const [name, status, want] of cases) t.equal(podSettling({ metadata: {}, ...(status ? { status } : {}) }), want, name);
});

t.test('podTerminating', async (t) => {
  t.equal(podTerminating({ metadata: { deletionTimestamp: '2026-11-30T00:00:00Z' } }), true, 'deletionTimestamp set');
  t.equal(podTerminating({ metadata: {} }), false, 'not being deleted');
});

t.test('isDrift: only a repair of something that was ours and in place', async (t) => {
  const r = (o: Partial<ApplyResult>): ApplyResult => ({
    netns: '/x',
    added: [],
    removed: [],
    replaced: [],
    restored: [],
    unchanged: [],
    skipped: [],
    owned: [],
    changed: true,
    ...o,
  });
  const item = (dst: string, dev = 'eth1') => ({ family: 4 as const, dst, dev });
  const owned = new Set(['172.16.10.0/24', '10.96.0.10/32']);
  const cases: Array<[string, ApplyResult, boolean]> = [
    ['nothing changed', r({ changed: false }), false],
    ['a route whose device just appeared is added (was skipped, never ours)', r({ added: [item('172.16.20.0/24')] }), false],
    [
      'a default route replaced when its device appeared',
      r({ replaced: [{ ...item('0.0.0.0/0'), from: { ...item('0.0.0.0/0', 'eth0'), protocol: 3 } }] }),
      false,
    ],
    ['a route of ours deleted by someone is added back', r({ added: [item('172.16.10.0/24')] }), true],
    [
      'a route of ours changed by someone is replaced',
      r({ replaced: [{ ...item('10.96.0.10/32'), from: { ...item('10.96.0.10/32', 'eth0'), protocol: 3 } }] }),
      true,
    ],
    ['a stray route with our protocol is removed', r({ removed: [item('192.0.2.0/24')] }), true],
    ['an original default route is put back', r({ restored: [item('0.0.0.0/0', 'eth0')] }), true],
  ];
  for (const [name, res, want] of cases) t.equal(isDrift(res, owned), want, name);
});
