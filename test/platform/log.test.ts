// platform/log.ts: the one logger of both processes. The shape the other tests and operators
// rely on: label levels ("level":"warn"), ISO times, fields then msg, Errors as their message,
// child loggers that bind the pod or the Route. And the tests that assert "no warning" by a
// pattern on that shape can fail: a real warning of either process matches their pattern.
import { PassThrough } from 'node:stream';
import { Registry } from 'prom-client';
import t from 'tap';
import { createLogger, forPod, forRoute, memoryLogger } from '../../platform/log.js';
import { buildApp } from '../../webhook/admission/server.js';
import { clusterCaches, testKey } from '../webhook/helpers.js';

/** The lines a logger wrote on a stream, parsed. */
function capture(): { stream: PassThrough; lines: () => Record<string, unknown>[]; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return {
    stream,
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

// The pattern test/node-e2e/node.test.ts uses to assert that the agent logged no warning.
const WARNING = /"level":"(warn|error)"/;

t.test('one JSON line per entry: label level, ISO time, fields, msg; lower levels filtered', async (t) => {
  const c = capture();
  const log = createLogger(c.stream, 'info');
  log.debug({ a: 1 }, 'not written');
  log.info({ count: 2 }, 'listed');
  log.warn({ err: new Error('boom'), n: 3 }, 'failed; retrying');
  log.error('plain message');
  await new Promise((r) => setImmediate(r));
  const lines = c.lines();
  t.equal(lines.length, 3, 'debug is below info');
  t.same(Object.keys(lines[0]!), ['level', 'time', 'count', 'msg'], 'no pid/hostname; msg last');
  t.match(lines[0], { level: 'info', count: 2, msg: 'listed', time: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ });
  t.match(lines[1], { level: 'warn', err: 'boom', n: 3, msg: 'failed; retrying' }, 'an Error is logged as its message, no stack');
  t.match(lines[2], { level: 'error', msg: 'plain message' });
  t.match(c.text(), WARNING, 'the no-warning pattern sees a warning');
  t.notMatch(c.text().split('\n')[0]!, WARNING, 'and not an info line');
});

t.test('child loggers bind the pod or the Route', async (t) => {
  const log = memoryLogger('debug');
  forPod(log, 'default/web-1').warn({ why: 'gone' }, 'netns refused');
  forRoute(log, 'r1').debug({ status: 'Applied' }, 'Route status written');
  t.match(log.lines, [
    { level: 'warn', pod: 'default/web-1', why: 'gone', msg: 'netns refused' },
    { level: 'debug', route: 'r1', status: 'Applied', msg: 'Route status written' },
  ]);
  t.equal(log.lines.length, 2);
});

t.test('the webhook (fastify) logs through the same logger, in the same shape', async (t) => {
  const caches = clusterCaches();
  const c = capture();
  const app = buildApp({
    admit: { caches, mode: 'default', keys: [testKey()] },
    readiness: () => ({ ready: true, detail: '' }),
    registry: new Registry(),
    logger: createLogger(c.stream, 'info'),
  });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'POST', url: '/mutate', payload: { kind: 'NotAReview' } });
  t.equal(res.statusCode, 400);
  await new Promise((r) => setImmediate(r));
  const line = c.lines().find((l) => typeof l.code === 'string');
  t.match(
    line,
    { level: 'info', reqId: /./, time: /^\d{4}-\d\d-\d\dT/, msg: /./ },
    "a label level and an ISO time, with fastify's request id",
  );
});
