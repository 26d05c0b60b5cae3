/**
 * `ovnkube-route agent`: the node injector (DaemonSet). Flags and environment are read
 * into one AgentConfig (injector/agent/config.ts, which also writes the --help text), then
 * injector/agent/main.ts runs it until SIGTERM or SIGINT.
 */
import { AgentConfigError, agentHelp, parseAgentConfig, type AgentConfig } from '../../injector/agent/config.js';
import { InputError, runUntilSignal, UsageError, type Command } from '../cli.js';

export const agentCommand: Command = {
  name: 'agent',
  summary: "run the node injector: write each pod's plan routes into its netns and keep them there",
  help: agentHelp(),
  async run(argv, io) {
    let config: AgentConfig;
    try {
      config = parseAgentConfig(argv, process.env);
    } catch (e) {
      throw e instanceof AgentConfigError ? new UsageError(e.message, { cause: e }) : e;
    }
    await runUntilSignal(
      async (signal) => {
        // Loaded here so other commands do not pay for the Kubernetes client and prom-client.
        const { runAgent, AgentStartError } = await import('../../injector/agent/main.js');
        try {
          await runAgent(config, { signal, logStream: io.stderr });
        } catch (e) {
          throw e instanceof AgentStartError ? new InputError(e.message, { cause: e }) : e;
        }
        // Within the DaemonSet's terminationGracePeriodSeconds (10 s), so the exit is ours.
      },
      { graceMs: 8_000 },
    );
    return 0;
  },
};
