/**
 * The `ovnkube-route` CLI: dispatches to one module per command (bin/commands/). Each
 * command's --help is its own `help` text, so what --help says is what the command parses.
 */
import { InputError, UsageError, type Command, type CommandIO } from './cli.js';
import { agentCommand } from './commands/agent.js';
import { convertCommand } from './commands/convert.js';
import { injectCommand } from './commands/inject.js';
import { planCommand } from './commands/plan.js';
import { routesCommand } from './commands/routes.js';
import { webhookCommand } from './commands/webhook.js';

const commands: Command[] = [
  agentCommand,
  convertCommand,
  injectCommand,
  planCommand,
  routesCommand,
  webhookCommand,
];

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
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    io.stderr.write(`ovnkube-route: unknown command "${name}"\n\n${topHelp()}`);
    return 2;
  }
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

