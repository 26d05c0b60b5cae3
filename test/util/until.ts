/**
 * The one way tests (and the demo) wait: poll `cond` until it returns a truthy value, and
 * resolve with it. A throw counts as "not yet" (the last error is kept for the message).
 * After `ms` it rejects naming `what` and the last value or error. It waits on evidence; it is
 * never a timing assertion.
 */
export async function until<T>(what: string, cond: () => T | Promise<T>, ms = 60_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: still not so after ${ms / 1000} s (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
