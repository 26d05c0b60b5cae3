// platform/errors.ts: coded errors from one catalogue, wrapping with `cause`. The errors the
// processes raise at start-up keep what they wrap (its code, for whoever debugs), while
// their message stays the one operators read.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CodedError, ERRORS, errorMessage, withCause } from '../../platform/errors.js';
import { loadPlanKeys } from '../../webhook/main.js';
import { WebhookError } from '../../webhook/errors.js';
import { AgentConfigError } from '../../injector/agent/config.js';
import { AgentStartError } from '../../injector/agent/main.js';

t.test('a coded error: the template, the code, the cause', async (t) => {
  const cause = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  const e = new CodedError('OVNKR_ERR_KUBECONFIG', withCause('kubeconfig /k', cause), { cause });
  t.equal(e.message, 'cannot load kubeconfig /k: connect ECONNREFUSED');
  t.equal(e.code, 'OVNKR_ERR_KUBECONFIG');
  t.equal(e.cause, cause, 'the wrapped error is kept');
  t.equal(e.statusCode, 500);
  t.notOk('cause' in new CodedError('OVNKR_ERR_CONFIG', 'x'), 'no cause when there is none');
  t.equal(errorMessage('plain'), 'plain');
  t.equal(errorMessage(new Error('m')), 'm');
  for (const [code, template] of Object.entries(ERRORS)) t.match(template, /%s/, `${code} has a detail`);
});

t.test('both processes raise coded errors that keep their cause', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovnkr-errors-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'plan.key');
  const err = await loadPlanKeys([missing]).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof WebhookError && err instanceof CodedError, 'a WebhookError is a CodedError');
  t.match(err, { name: 'WebhookError', code: 'OVNKR_ERR_PLAN_KEY', message: new RegExp(`^cannot load the plan key: .*${missing}`) });
  t.match((err as Error).cause, { code: 'ENOENT' }, 'the file system error is the cause');
  const start = new AgentStartError('cannot listen on 0.0.0.0:1 for metrics: EACCES', new Error('EACCES'));
  t.match(start, {
    name: 'AgentStartError',
    code: 'OVNKR_ERR_AGENT_START',
    message: 'cannot listen on 0.0.0.0:1 for metrics: EACCES',
    cause: { message: 'EACCES' },
  });
  t.match(new AgentConfigError('--max-parallel: expected 1-256'), {
    name: 'AgentConfigError',
    code: 'OVNKR_ERR_AGENT_CONFIG',
    message: '--max-parallel: expected 1-256',
  });
});
