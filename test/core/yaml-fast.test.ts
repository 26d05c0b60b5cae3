/**
 * parseSimpleYaml (core/yaml-fast.ts) against the `yaml` package, which parseDocs uses for
 * everything the fast path declines: whenever the fast path answers, the package parses the
 * same text without an error and gives the same values (its documents with content, toJS);
 * whenever the package reports an error, the fast path declines. On the repository's own YAML,
 * on random documents written by the package in several styles, on random edits of those, and
 * on hand-made cases of each thing the subset leaves out.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { parseAllDocuments, stringify, type ToStringOptions } from 'yaml';
import { parseSimpleYaml } from '../../core/yaml-fast.js';
import { repoRoot } from '../util/fixtures.js';
import { rng } from '../util/rng.js';

/** The package's answer as parseDocs reads it: the values of the documents with content, or 'error'. */
function packageValues(text: string): unknown[] | 'error' {
  const docs = parseAllDocuments(text, { prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.some((d) => d.errors.length)) return 'error';
  return list.filter((d) => d.contents !== null).map((d) => d.toJS({ maxAliasCount: 1000 }));
}

/** '' when the fast path agrees with the package on `text` (or declines), else what differs. */
function disagreement(text: string): { answered: boolean; problem: string } {
  const fast = parseSimpleYaml(text);
  if (fast === undefined) return { answered: false, problem: '' };
  const pkg = packageValues(text);
  if (pkg === 'error') return { answered: true, problem: `the package refuses it, the fast path gave ${JSON.stringify(fast)}` };
  // JSON.stringify tells -0 from 0 only through Object.is: compare both ways.
  const same = JSON.stringify(fast) === JSON.stringify(pkg) && sameNumbers(fast, pkg);
  return { answered: true, problem: same ? '' : `fast ${JSON.stringify(fast)} != package ${JSON.stringify(pkg)}` };
}

/** A message safe in TAP output: one line of ASCII (a U+2028 or a newline would end it, a --- line would start YAML). */
function ascii(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function sameNumbers(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b);
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => sameNumbers((a as never)[k], (b as never)[k]));
  }
  return true;
}

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(name)) out.push(p);
  }
  return out;
}

t.test("the repository's YAML files", async (t) => {
  const files = yamlFiles(repoRoot);
  let answered = 0;
  for (const f of files) {
    const d = disagreement(readFileSync(f, 'utf8'));
    if (d.answered) answered++;
    if (d.problem) t.fail(ascii(`${relative(repoRoot, f)}: ${d.problem}`));
  }
  t.pass(`${answered} of ${files.length} files answered by the fast path, each as the package`);
  for (const f of ['examples/demo-bundle.yaml', 'examples/cr-config.yaml']) {
    t.not(parseSimpleYaml(readFileSync(join(repoRoot, f), 'utf8')), undefined, `${f} is in the subset`);
  }
});

const KEYS = [
  'name',
  'namespace',
  'labels',
  'app',
  'routes.k8s.ovn.org/plan',
  'k8s.ovn.org/pod-networks',
  'a b',
  'x_y',
  'true',
  '1',
  'null',
  "it's",
  'a:b',
  'q"k',
  '-x',
  '.5',
  'key ',
];
const STRINGS = [
  '',
  ' ',
  'x',
  'nginx',
  '10.96.0.0/12',
  'fd00::1',
  'eth1',
  'null',
  'Null',
  '~',
  'True',
  'false',
  'yes',
  '012',
  '0',
  '-0',
  '7',
  '-12',
  '1.5',
  '1.50',
  '-0.5',
  '1e3',
  '0x1F',
  '0o17',
  '+1',
  '.inf',
  '.NaN',
  '1_000',
  '9007199254740993',
  'a: b',
  'a #b',
  'a#b',
  '#x',
  '- a',
  '-a',
  '[x]',
  '{y}',
  'x, y',
  "it's",
  '"q"',
  'back\\slash',
  'é',
  '\u2028',
  ':x',
  'x:',
  '*a',
  '&a',
  '!t',
  '%p',
  '@x',
  '`x`',
  '?x',
  'a,b',
  'two\nlines',
  'tab\tx',
  'trailing ',
  ' leading',
  'http://x:80/p',
  'nightly-*',
  '{"v":1,"routes":[]}',
  '---',
  '...',
];

function randomValue(r: (n: number) => number, depth: number): unknown {
  const k = r(depth > 3 ? 6 : 10);
  if (k < 3) return STRINGS[r(STRINGS.length)];
  if (k === 3) return [0, 1, -7, 42, 1.5, -0.25, 1e21, 2 ** 53, 0.1][r(9)];
  if (k === 4) return [true, false, null][r(3)];
  if (k === 5) return `${STRINGS[r(STRINGS.length)]}${r(100)}`;
  if (k < 8) {
    const o: Record<string, unknown> = {};
    for (let i = r(4); i > 0; i--) o[KEYS[r(KEYS.length)]!] = randomValue(r, depth + 1);
    return o;
  }
  return Array.from({ length: r(4) }, () => randomValue(r, depth + 1));
}

const STYLES: ToStringOptions[] = [
  {},
  { indentSeq: false }, // as kubectl prints
  { collectionStyle: 'flow' },
  { flowCollectionPadding: false },
  { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN' },
  { defaultStringType: 'QUOTE_SINGLE' },
  { indent: 4 },
  { lineWidth: 20 },
];

/** A random multi-document text written by the package, with comments and blank lines here and there. */
function randomText(r: (n: number) => number): string {
  const docs: string[] = [];
  for (let d = 1 + r(3); d > 0; d--) {
    const v: Record<string, unknown> = { apiVersion: 'v1', kind: 'Pod', metadata: randomValue(r, 1), spec: randomValue(r, 1) };
    let text = stringify(v, STYLES[r(STYLES.length)]);
    if (r(3) === 0) {
      const lines = text.split('\n');
      const at = r(lines.length);
      const indent = ' '.repeat(r(5));
      lines.splice(at, 0, r(2) ? `${indent}# a comment: with - things [x]` : '');
      text = lines.join('\n');
    }
    if (r(4) === 0) text = text.replace(/\n/, ' # trailing\n');
    docs.push(text);
  }
  return (r(2) ? '---\n' : '') + docs.join(r(2) ? '---\n' : '\n---\n');
}

t.test('random documents in the styles the package writes, and random edits of them', async (t) => {
  const r = rng(20261201);
  let answered = 0;
  let editsAnswered = 0;
  let failures = 0;
  const fail = (what: string, text: string, problem: string): void => {
    failures++;
    if (failures <= 5) t.fail(ascii(`${what}: ${problem}; text ${JSON.stringify(text)}`));
  };
  for (let i = 0; i < 3000; i++) {
    const text = randomText(r);
    const d = disagreement(text);
    if (d.answered) answered++;
    if (d.problem) fail(`case ${i}`, text, d.problem);
    // An edit: a character of YAML's syntax inserted, or a character removed.
    const at = r(text.length);
    const edited =
      r(3) === 0 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + ': -#"\'[]{},\n|&*!>?%@'[r(21)] + text.slice(at);
    const e = disagreement(edited);
    if (e.answered) editsAnswered++;
    if (e.problem) fail(`case ${i}, edited`, edited, e.problem);
  }
  t.equal(failures, 0, `no difference (${answered} of 3000 texts and ${editsAnswered} of 3000 edits answered by the fast path)`);
  t.ok(answered >= 1000 && editsAnswered >= 500, 'the fast path answers often enough for this to mean something');
});

t.test('hand-made cases', async (t) => {
  const answered: [string, string][] = [
    ['kubectl style', 'metadata:\n  name: x\nspec:\n  containers:\n  - name: c\n    image: x\n    ports:\n    - 80\n  - name: d\n'],
    ['nested sequences under items', 'a:\n  - b:\n      - 1\n      - 2\n    c: 3\n'],
    ['flow in block', "m: {a: [1, 2], b: {c: 'd'}, e: }\ns: ['x, y', \"z\\n\"]\n"],
    ['empty values', 'a:\nb: ~\nc: {}\nd: []\n'],
    ['comments', '# top\na: 1 # one\n  # indented\nb: "x" # two\n---\n# only a comment\n---\nc: 3\n'],
    ['documents', '---\na: 1\n---\n---\nb: 2\n---\n'],
    ['sequence at the top', '- a\n- b: 1\n  c: 2\n-\n- x\n'],
    ['scalars', 'a: 1.50\nb: -3\nc: TRUE\nd: 10.96.0.0/12\ne: http://x:80\nf: a#b\ng: foo[1]\n'],
    ['quoted keys', "\"a b\": 1\n'c''d': 2\n"],
  ];
  for (const [what, text] of answered) {
    const d = disagreement(text);
    t.ok(d.answered, `${what}: answered`);
    t.equal(d.problem, '', `${what}: as the package`);
  }
  const declined: [string, string][] = [
    ['block scalar', 'a: |\n  x\n'],
    ['folded scalar', 'a: >-\n  x\n'],
    ['multi-line plain', 'a: b\n  c\n'],
    ['multi-line quoted', 'a: "b\n  c"\n'],
    ['multi-line flow', 'a: [1,\n  2]\n'],
    ['anchor and alias', 'a: &x 1\nb: *x\n'],
    ['tag', 'a: !!str 1\n'],
    ['directive', '%YAML 1.2\n---\na: 1\n'],
    ['document end', 'a: 1\n...\n'],
    ['duplicate key', 'a: 1\na: 2\n'],
    ['duplicate flow key', 'a: {b: 1, b: 2}\n'],
    ['number key', '1: a\n'],
    ['boolean key', 'true: a\n'],
    ['complex key', '? a\n: b\n'],
    ['tab', 'a:\n\tb: 1\n'],
    ['CRLF', 'a: 1\r\nb: 2\r\n'],
    ['hex', 'a: 0x1F\n'],
    ['exponent', 'a: 1e3\n'],
    ['leading zero', 'a: 012\n'],
    ['too large an integer', 'a: 9007199254740993\n'],
    ['a scalar document', 'just text\n'],
    ['nested on the same line', 'a: b: c\n'],
    ['a pair in a flow sequence', 'a: [b: c]\n'],
    ['__proto__', '__proto__: 1\n'],
    ['bad indentation', 'a:\n    b: 1\n  c: 2\n'],
  ];
  for (const [what, text] of declined) t.equal(parseSimpleYaml(text), undefined, `${what}: declined`);
});
