/**
 * The `ovnkube-route` CLI: dispatches to one module per command (bin/commands/). Each
 * command's --help is its own `help` text, so what --help says is what the command parses.
 */
import { InputError, UsageError, type Command, type CommandIO } from './cli.js';

/**
 * The commands, loaded lazily: a command's module (and what it imports: the Kubernetes client,
 * fastify, netlink...) is imported only when that command runs, so `--help` and the offline
 * commands start quickly. The summaries live here for the top-level --help;
 * test/cli checks they equal each module's own.
 */
export const commands: { name: string; summary: string; load: () => Promise<Command> }[] = [
  { name: 'agent', summary: 'run the node injector: write each pod\'s plan routes into its netns and keep them there', load: async () => (await import('./commands/agent.js')).agentCommand },
  { name: 'convert', summary: 'convert a cr-config.json/yaml route list into a Route object', load: async () => (await import('./commands/convert.js')).convertCommand },
  { name: 'inject', summary: 'apply a route plan to one netns and print what changed', load: async () => (await import('./commands/inject.js')).injectCommand },
  { name: 'plan', summary: 'resolve pods\' route plans offline from a file of Kubernetes objects', load: async () => (await import('./commands/plan.js')).planCommand },
  { name: 'routes', summary: 'print a pod netns\'s routing table like route -n, marking the routes ovnkube-route owns', load: async () => (await import('./commands/routes.js')).routesCommand },
  { name: 'version', summary: 'print the version of ovnkube-route, its Node.js runtime and the API versions it speaks', load: async () => (await import('./commands/version.js')).versionCommand },
  { name: 'webhook', summary: 'run the mutating admission webhook that stamps pods with their signed route plan', load: async () => (await import('./commands/webhook.js')).webhookCommand },
];

/** Edit distance of two short words, a swap of two neighbours counting as one edit (for "did you mean"). */
function distance(a: string, b: string): number {
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

/** The command a misspelled name most likely meant, if one is close enough. */
export function didYouMean(name: string): string | undefined {
  const best = commands.map((c) => ({ c: c.name, d: distance(name.toLowerCase(), c.name) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(1, Math.floor(best.c.length / 3)) ? best.c : undefined;
}

function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'ovnkube-route: steer pod traffic between NICs per Service and per CIDR, live.',
    '',
    'Usage: ovnkube-route <command> [flags]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `ovnkube-route <command> --help` for a command\'s flags.',
  ].join('\n') + '\n';
}

/** Run the CLI with argv (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CommandIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(topHelp());
    return name === undefined ? 2 : 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    const guess = didYouMean(name);
    io.stderr.write(`ovnkube-route: unknown command "${name}"${guess ? `; did you mean "${guess}"?` : ''}\n\n${topHelp()}`);
    return 2;
  }
  const cmd = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(cmd.help.endsWith('\n') ? cmd.help : cmd.help + '\n');
    return 0;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`ovnkube-route ${name}: ${e.message}\nRun \`ovnkube-route ${name} --help\` for usage.\n`);
      return 2;
    }
    if (e instanceof InputError) {
      io.stderr.write(`ovnkube-route ${name}: ${e.message}\n`);
      return 1;
    }
    io.stderr.write(`ovnkube-route ${name}: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

