/**
 * How the tests start a Node process of ours (the CLI, the agent, the webhook) as a user
 * would: without the test runner's loader. Leaving NODE_OPTIONS out of the child's env is not
 * enough: tap's process tracking wraps child_process and puts its `--import` loader back, and
 * that loader turns on source maps, so each child parses @kubernetes/client-node's maps and
 * more (measured: a `convert` run 185 ms instead of 105 ms; the agent 180 MiB of heap instead of
 * 40). `env -u NODE_OPTIONS` removes it after the wrapper has added it. `env` execs node, so
 * the child's pid is node's.
 */
export function nodeCommand(args: string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', process.execPath, ...args]];
}
