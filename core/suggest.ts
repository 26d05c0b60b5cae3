/** "Did you mean": the closest of a few known words to a misspelled one. Pure. */

/** Edit distance of two short words, a swap of two neighbours counting as one edit (for "did you mean"). */
export function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate a misspelled word most likely meant, if one is close enough (a third of its length). */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const best = candidates.map((c) => ({ c, d: distance(word, c) })).sort((x, y) => x.d - y.d || (x.c < y.c ? -1 : 1))[0];
  return best && best.d <= Math.max(1, Math.floor(best.c.length / 3)) ? best.c : undefined;
}
