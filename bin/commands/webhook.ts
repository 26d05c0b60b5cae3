/**
 * `ovnkube-route webhook`: the admission webhook server. Flags and environment are read
 * into one WebhookConfig (webhook/config.ts, which also writes the --help text), then
 * webhook/main.ts runs it until SIGTERM or SIGINT.
 */
import { parseWebhookConfig, webhookHelp, type WebhookConfig } from '../../webhook/config.js';
import { WebhookError } from '../../webhook/errors.js';
import { InputError, runUntilSignal, UsageError, type Command } from '../cli.js';

export const webhookCommand: Command = {
  name: 'webhook',
  summary: 'run the mutating admission webhook that stamps pods with their signed route plan',
  help: webhookHelp(),
  async run(argv, io) {
    let config: WebhookConfig;
    try {
      config = parseWebhookConfig(argv, process.env);
    } catch (e) {
      throw e instanceof WebhookError ? new UsageError(e.message, { cause: e }) : e;
    }
    await runUntilSignal(
      async (signal) => {
        try {
          // Loaded here so other commands do not pay for the Kubernetes client and fastify.
          const { runWebhook } = await import('../../webhook/main.js');
          await runWebhook(config, { signal, logStream: io.stderr });
        } catch (e) {
          // Startup problems with files (plan key, serving pair) are the operator's to fix.
          throw e instanceof WebhookError ? new InputError(e.message, { cause: e }) : e;
        }
        // Within the Deployment's terminationGracePeriodSeconds (default 30 s).
      },
      { graceMs: 25_000 },
    );
    return 0;
  },
};
