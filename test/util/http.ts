/**
 * Small HTTP and port helpers the test tiers share: free loopback ports, a plain GET of a
 * local endpoint (/metrics, /healthz, /readyz), and summing a Prometheus metric's samples.
 */
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';

/** `n` distinct free ports on 127.0.0.1 (all listeners are held open together, then released). */
export function freePorts(n: number): Promise<number[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  ).then((servers) =>
    Promise.all(
      servers.map(
        (s) =>
          new Promise<number>((resolve) => {
            const { port } = s.address() as AddressInfo;
            s.close(() => resolve(port));
          }),
      ),
    ),
  );
}

/** One free port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** GET http://127.0.0.1:<port><path>; status 0 and an empty body when nothing answers in 5 s. */
export function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** The sum of a metric's samples (Prometheus text format) whose labels include `labels`; 0 when none. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ([-+\deE.]+|NaN)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',').filter(Boolean);
    if (want.every((w) => have.includes(w))) sum += Number(m[3]);
  }
  return sum;
}
