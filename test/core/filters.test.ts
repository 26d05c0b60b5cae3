import t from 'tap';
import { routeSelects, termMatches, type Subject } from '../../core/filters.js';
import { globMatch, globMatchPrefix, labelSelectorMatches } from '../../core/match.js';
import type { LabelSelector, OwnerRef, Pod, PodSelectorTerm } from '../../core/types.js';

const pod = (ns: string, name: string, labels: Record<string, string> = {}, generateName?: string): Pod => ({
  metadata: { namespace: ns, ...(name ? { name } : {}), ...(generateName ? { generateName } : {}), labels },
});
const subj = (p: Pod, nsLabels: Record<string, string> = {}, owners: OwnerRef[] = []): Subject => ({
  pod: p,
  namespace: { metadata: { name: p.metadata?.namespace ?? '', labels: nsLabels } },
  owners,
});

t.test('globs', async (t) => {
  const cases: [string, string, boolean][] = [
    ['default', 'default', true],
    ['default', 'defaults', false],
    ['prod-*', 'prod-eu', true],
    ['prod-*', 'prod-', true],
    ['*-db', 'orders-db', true],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['*', 'anything', true],
    ['web.*', 'web.1', true],
    ['web.*', 'webx1', false], // "." is literal
  ];
  for (const [p, v, want] of cases) t.equal(globMatch(p, v), want, `${p} ~ ${v}`);
  const pre: [string, string, string][] = [
    ['web-*', 'web-7d4f-', 'yes'],
    ['web*', 'web-', 'yes'],
    ['db-*', 'web-7d4f-', 'no'],
    ['web-7d4f-abcde', 'web-7d4f-', 'unknown'],
    ['web-*-x', 'web-7d4f-', 'unknown'],
    ['w*', 'web-', 'yes'],
    ['web-7d4f-1-*', 'web-7d4f-', 'unknown'],
    ['web-7x*', 'web-7d4f-', 'no'],
  ];
  for (const [p, g, want] of pre) t.equal(globMatchPrefix(p, g), want, `${p} vs generateName ${g}`);
});

t.test('label selectors', async (t) => {
  const labels = { app: 'web', env: 'prod' };
  const cases: [LabelSelector, Record<string, string> | undefined, boolean][] = [
    [{}, labels, true],
    [{}, undefined, true],
    [{ matchLabels: { app: 'web' } }, labels, true],
    [{ matchLabels: { app: 'db' } }, labels, false],
    [{ matchLabels: { app: 'web', env: 'dev' } }, labels, false],
    [{ matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'stage'] }] }, labels, true],
    [{ matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] }, labels, false],
    [{ matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev'] }] }, labels, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['dev'] }] }, labels, true],
    [{ matchExpressions: [{ key: 'env', operator: 'Exists' }] }, labels, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, labels, false],
    [{ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] }, labels, false],
  ];
  for (const [sel, l, want] of cases) t.equal(labelSelectorMatches(sel, l), want, JSON.stringify(sel));
});

t.test('every term field, alone and combined', async (t) => {
  const web = subj(pod('prod-eu', 'web-1', { app: 'web' }), { team: 'a' }, [
    { kind: 'ReplicaSet', namespace: 'prod-eu', name: 'web-7d4f' },
    { kind: 'Deployment', namespace: 'prod-eu', name: 'web' },
  ]);
  const cases: [string, PodSelectorTerm, 'yes' | 'no', RegExp?][] = [
    ['namespaces hit', { namespaces: ['default', 'prod-*'] }, 'yes'],
    ['namespaces miss', { namespaces: ['default'] }, 'no', /namespace "prod-eu" is not in namespaces \[default\]/],
    ['namespaceSelector hit', { namespaceSelector: { matchLabels: { team: 'a' } } }, 'yes'],
    ['namespaceSelector miss', { namespaceSelector: { matchLabels: { team: 'b' } } }, 'no', /namespaceSelector \{team=b\}/],
    ['pods hit', { pods: ['prod-eu/web-*'] }, 'yes'],
    ['pods wildcard namespace', { pods: ['*/web-1'] }, 'yes'],
    ['pods miss', { pods: ['prod-eu/db-*', 'default/web-1'] }, 'no', /is not in pods/],
    ['podSelector hit', { podSelector: { matchLabels: { app: 'web' } } }, 'yes'],
    [
      'podSelector miss',
      { podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] } },
      'no',
      /podSelector \{app in \(db\)\}/,
    ],
    ['owners Deployment through ReplicaSet', { owners: [{ kind: 'Deployment', name: 'web' }] }, 'yes'],
    ['owners ReplicaSet glob', { owners: [{ kind: 'ReplicaSet', name: 'web-*' }] }, 'yes'],
    ['owners namespace given', { owners: [{ kind: 'Deployment', namespace: 'prod-*', name: 'web' }] }, 'yes'],
    ['owners namespace differs', { owners: [{ kind: 'Deployment', namespace: 'default', name: 'web' }] }, 'no', /match none of owners/],
    ['owners kind differs', { owners: [{ kind: 'StatefulSet', name: 'web' }] }, 'no', /Deployment\/web/],
    [
      'all fields match',
      {
        namespaces: ['prod-*'],
        namespaceSelector: { matchLabels: { team: 'a' } },
        pods: ['*/web-*'],
        podSelector: { matchLabels: { app: 'web' } },
        owners: [{ kind: 'Deployment', name: 'web' }],
      },
      'yes',
    ],
    [
      'all but one field match',
      { namespaces: ['prod-*'], podSelector: { matchLabels: { app: 'web' } }, owners: [{ kind: 'DaemonSet', name: 'web' }] },
      'no',
      /owners/,
    ],
  ];
  for (const [name, term, want, reason] of cases) {
    const v = termMatches(term, web);
    t.equal(v.match, want, name);
    if (want === 'yes') t.equal(v.reason, '', `${name}: no reason when matching`);
    if (reason) t.match(v.reason, reason, `${name}: reason "${v.reason}"`);
  }
});

t.test('include / exclude lists', async (t) => {
  const s = subj(pod('default', 'web-1', { app: 'web' }));
  const cases: [string, PodSelectorTerm[] | undefined, PodSelectorTerm[] | undefined, string, RegExp?][] = [
    ['no include selects every pod', undefined, undefined, 'yes'],
    ['any include term suffices', [{ namespaces: ['x'] }, { podSelector: { matchLabels: { app: 'web' } } }], undefined, 'yes'],
    ['no include term matches', [{ namespaces: ['x'] }, { namespaces: ['y'] }], undefined, 'no', /include\[0\]: .*include\[1\]/],
    ['exclude wins over include', [{ namespaces: ['default'] }], [{ pods: ['default/web-*'] }], 'no', /excluded by exclude\[0\]/],
    ['exclude without include', undefined, [{ namespaces: ['default'] }], 'no', /excluded by exclude\[0\]/],
    ['exclude not matching', undefined, [{ namespaces: ['kube-system'] }], 'yes'],
    ['empty include list selects nothing', [], undefined, 'no', /include is empty/],
  ];
  for (const [name, inc, exc, want, reason] of cases) {
    const v = routeSelects(inc, exc, s);
    t.equal(v.match, want, name);
    if (reason) t.match(v.reason, reason, name);
  }
});

t.test('generateName pods: name filters are tri-state', async (t) => {
  const s = subj(pod('default', '', { app: 'web' }, 'web-7d4f-'));
  t.equal(routeSelects([{ pods: ['default/web-*'] }], undefined, s).match, 'yes', 'prefix decides include');
  t.equal(routeSelects([{ pods: ['default/db-*'] }], undefined, s).match, 'no', 'prefix rules out include');
  t.equal(routeSelects([{ pods: ['default/web-7d4f-xyz12'] }], undefined, s).match, 'unknown', 'exact name unknown');
  t.equal(routeSelects(undefined, [{ pods: ['default/web-7d4f-xyz12'] }], s).match, 'unknown', 'exclude undecided defers');
  t.equal(routeSelects(undefined, [{ pods: ['default/web-*'] }], s).match, 'no', 'exclude by prefix');
  t.equal(
    routeSelects([{ pods: ['default/web-7d4f-xyz12'] }, { namespaces: ['default'] }], undefined, s).match,
    'yes',
    'another include term decides',
  );
  t.equal(
    routeSelects([{ pods: ['default/web-7d4f-xyz12'] }], [{ namespaces: ['default'] }], s).match,
    'no',
    'exclude decides even when include is unknown',
  );
});
