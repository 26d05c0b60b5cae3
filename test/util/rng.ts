/** A seeded pseudo-random source for property tests: r(n) is an integer in [0, n). Same seed, same sequence. */
export function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % n;
  };
}
