// core/fifo-memo.ts against a plain model (an array of [key, value, bytes] in insertion order):
// table cases for the bounds, then 20,000 random sets and gets over a few bounds.
import t from 'tap';
import { FifoMemo } from '../../core/fifo-memo.js';
import { rng } from '../util/rng.js';

/** What the memo must hold: entries oldest first, dropped from the front while over a bound. */
class Model {
  entries: [string, number, number][] = [];
  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
  ) {}
  get(k: string): number | undefined {
    return this.entries.find((e) => e[0] === k)?.[1];
  }
  set(k: string, v: number, bytes: number): void {
    const e = this.entries.find((x) => x[0] === k);
    if (e) {
      e[1] = v;
      e[2] = bytes;
    } else this.entries.push([k, v, bytes]);
    const sum = () => this.entries.reduce((a, x) => a + x[2], 0);
    while (this.entries.length > this.maxEntries || sum() > this.maxBytes) this.entries.shift();
  }
  get bytes(): number {
    return this.entries.reduce((a, x) => a + x[2], 0);
  }
}

t.test('bounds, table', async (t) => {
  const cases: { name: string; max: number; maxBytes?: number; sets: [string, number, number?][]; held: string[] }[] = [
    {
      name: 'under the bound: all held',
      max: 3,
      sets: [
        ['a', 1],
        ['b', 2],
      ],
      held: ['a', 'b'],
    },
    {
      name: 'one over: the oldest goes',
      max: 2,
      sets: [
        ['a', 1],
        ['b', 2],
        ['c', 3],
      ],
      held: ['b', 'c'],
    },
    {
      name: 'a key set again keeps its place',
      max: 2,
      sets: [
        ['a', 1],
        ['b', 2],
        ['a', 9],
        ['c', 3],
      ],
      held: ['b', 'c'],
    },
    {
      name: 'bytes: the oldest go until it fits',
      max: 10,
      maxBytes: 10,
      sets: [
        ['a', 1, 4],
        ['b', 2, 4],
        ['c', 3, 7],
      ],
      held: ['c'],
    },
    {
      name: 'bytes of a key set again are replaced',
      max: 10,
      maxBytes: 10,
      sets: [
        ['a', 1, 8],
        ['a', 2, 2],
        ['b', 3, 8],
      ],
      held: ['a', 'b'],
    },
    {
      name: 'an entry alone over the byte bound is not held',
      max: 10,
      maxBytes: 10,
      sets: [
        ['a', 1, 2],
        ['b', 2, 11],
      ],
      held: [],
    },
  ];
  for (const c of cases) {
    const m = new FifoMemo<number>(c.max, c.maxBytes);
    for (const [k, v, b] of c.sets) m.set(k, v, b);
    const keys = [...new Set(c.sets.map((s) => s[0]))];
    t.same(
      keys.filter((k) => m.get(k) !== undefined),
      c.held,
      c.name,
    );
    t.equal(m.size, c.held.length, `${c.name}: size`);
  }
  const m = new FifoMemo<number>(2);
  m.set('a', 1);
  m.set('a', 2);
  t.equal(m.get('a'), 2, 'the newest value of a key');
});

t.test('random sets and gets agree with the model', async (t) => {
  let differences = 0;
  for (const [seed, max, maxBytes, keys] of [
    [1, 1, Infinity, 3],
    [2, 8, Infinity, 20],
    [3, 64, 500, 200],
    [4, 100, 50, 30],
  ] as const) {
    const r = rng(seed);
    const m = new FifoMemo<number>(max, maxBytes);
    const model = new Model(max, maxBytes);
    for (let i = 0; i < 5000; i++) {
      const k = `k${r(keys)}`;
      if (r(3) === 0) {
        if (m.get(k) !== model.get(k)) differences++;
        continue;
      }
      const bytes = r(20);
      m.set(k, i, bytes);
      model.set(k, i, bytes);
      if (m.size !== model.entries.length || m.bytes !== model.bytes) differences++;
    }
    for (let k = 0; k < keys; k++) if (m.get(`k${k}`) !== model.get(`k${k}`)) differences++;
  }
  t.equal(differences, 0, 'no difference over 20,000 operations');
});
