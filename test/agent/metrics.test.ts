// The metrics listener (/metrics, /healthz, /readyz) over real HTTP on loopback, and the
// `ovnkube-route agent` command's flag handling through the real binary.
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import t from 'tap';
import { createAgentMetrics, serveMetrics } from '../../injector/metrics.js';
import { runCli } from '../util/cli.js';

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, ...(res.headers['content-type'] ? { type: res.headers['content-type'] } : {}) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('metrics listener', async (t) => {
  const registry = new Registry();
  const m = createAgentMetrics(registry);
  m.failure('netns-refused');
  m.planRejected('bad-signature');
  m.observeInjectionLatency(0.042);
  m.countPods(() => ({ tracked: 3, kept: 0, waiting: 0 }));
  let ready = false;
  const server = await serveMetrics(registry, { host: '127.0.0.1', port: 0 }, () => ready);
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as AddressInfo).port;
  const metrics = await get(port, '/metrics');
  t.equal(metrics.status, 200);
  t.match(metrics.type, /^text\/plain/);
  for (const line of [
    'ovnkube_route_injector_failures_total{reason="netns-refused"} 1',
    'ovnkube_route_injector_failures_total{reason="plan-rejected"} 1',
    'ovnkube_route_injector_plans_rejected_total{code="bad-signature"} 1',
    'ovnkube_route_injector_injection_latency_seconds_bucket{le="0.05"} 1',
    'ovnkube_route_injector_pods_tracked 3',
    'ovnkube_route_injector_routes_restored_total{kind="drift"} 0',
    'ovnkube_route_injector_routes_applied_total 0',
  ])
    t.ok(metrics.body.includes(line), line);
  t.equal((await get(port, '/healthz')).status, 200);
  t.equal((await get(port, '/readyz')).status, 503, 'not ready before the pod list is in');
  ready = true;
  t.equal((await get(port, '/readyz')).status, 200);
  t.equal((await get(port, '/nope')).status, 404);
  t.equal((await get(port, '/metrics', 'POST')).status, 405);
});

t.test('ovnkube-route agent: --help and bad flags', async (t) => {
  const help = runCli(['agent', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: ovnkube-route agent --node-name NAME --plan-key FILE/);
  t.match(runCli(['--help']).stdout, /agent\s+run the node injector/);
  const missing = runCli(['agent'], { env: { NODE_NAME: '' } });
  t.equal(missing.code, 2, 'usage error');
  t.match(missing.stderr, /--node-name \(or \$NODE_NAME\) is required/);
  const badKey = runCli(['agent', '--node-name', 'n1', '--plan-key', '/nonexistent/plan.key', '--metrics-addr', 'off'], {
    env: { NODE_NAME: '' },
  });
  t.equal(badKey.code, 1, 'a key file that cannot be read stops the start');
  t.match(badKey.stderr, /plan key \/nonexistent\/plan\.key: cannot read/);
});
