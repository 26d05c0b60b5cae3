/**
 * The `ovnkube-route` CLI: dispatches to one module per command (bin/commands/). Each
 * command's --help is its own `help` text, so what --help says is what the command parses.
 */
import { writeSync } from 'node:fs';
import { closest, InputError, UsageError, type Command, type CommandIO } from './cli.js';

/**
 * The commands, loaded lazily: a command's module (and what it imports: the Kubernetes client,
 * fastify, netlink...) is imported only when that command runs, so `--help` and the offline
 * commands start quickly. The summaries live here for the top-level --help;
 * test/cli checks they equal each module's own. In the built CLI the offline commands (convert,
 * plan, inject, routes) are code-cached islands (scripts/bundle-cli.mjs, bin/code-cache.ts).
 */
export const commands: { name: string; summary: string; load: () => Promise<Command> }[] = [
  {
    name: 'agent',
    summary: "run the node injector: write each pod's plan routes into its netns and keep them there",
    load: async () => (await import('./commands/agent.js')).agentCommand,
  },
  {
    name: 'convert',
    summary: 'convert a cr-config.json/yaml route list into a Route object',
    load: async () => (await import('./commands/convert.js')).convertCommand,
  },
  {
    name: 'explain',
    summary: "explain a live pod's routes: which Routes select it and why, its plan, what the agent reported",
    load: async () => (await import('./commands/explain.js')).explainCommand,
  },
  {
    name: 'inject',
    summary: 'apply a route plan to one netns and print what changed',
    load: async () => (await import('./commands/inject.js')).injectCommand,
  },
  {
    name: 'plan',
    summary: "resolve pods' route plans offline from a file of Kubernetes objects",
    load: async () => (await import('./commands/plan.js')).planCommand,
  },
  {
    name: 'routes',
    summary: "print a pod netns's routing table like route -n, marking the routes ovnkube-route owns",
    load: async () => (await import('./commands/routes.js')).routesCommand,
  },
  {
    name: 'version',
    summary: 'print the version of ovnkube-route, its Node.js runtime and the API versions it speaks',
    load: async () => (await import('./commands/version.js')).versionCommand,
  },
  {
    name: 'webhook',
    summary: 'run the mutating admission webhook that stamps pods with their signed route plan',
    load: async () => (await import('./commands/webhook.js')).webhookCommand,
  },
];

/** The command a misspelled name most likely meant, if one is close enough. */
export function didYouMean(name: string): string | undefined {
  return closest(
    name.toLowerCase(),
    commands.map((c) => c.name),
  );
}

function topHelp(prog = 'ovnkube-route'): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return (
    [
      'ovnkube-route: steer pod traffic between NICs per Service and per CIDR, live.',
      '',
      `Usage: ${prog} <command> [flags]`,
      '',
      'Commands:',
      ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
      '',
      `Run \`${prog} <command> --help\` for a command's flags.`,
    ].join('\n') + '\n'
  );
}

/** Run the CLI with argv (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CommandIO, prog = 'ovnkube-route'): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(topHelp(prog));
    return name === undefined ? 2 : 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    const guess = didYouMean(name);
    io.stderr.write(`${prog}: unknown command "${name}"${guess ? `; did you mean "${guess}"?` : ''}\n\n${topHelp(prog)}`);
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
      io.stderr.write(`${prog} ${name}: ${e.message}\nRun \`${prog} ${name} --help\` for usage.\n`);
      return 2;
    }
    if (e instanceof InputError) {
      io.stderr.write(`${prog} ${name}: ${e.message}\n`);
      return 1;
    }
    // Anything else is still said in one line, never as a stack trace (OVNKUBE_ROUTE_DEBUG=1 shows it).
    const err = e as Error;
    const text = process.env.OVNKUBE_ROUTE_DEBUG === '1' ? (err?.stack ?? String(e)) : errorLine(e);
    io.stderr.write(`${prog} ${name}: ${text}\n`);
    return 1;
  }
}

/** One line for an unexpected error: its message (and code), never its stack. */
export function errorLine(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as NodeJS.ErrnoException).code;
  const first = (e.message || e.name)
    .split('\n')
    .filter((l) => !/^\s+at /.test(l))
    .join(' ')
    .trim();
  return `${first}${code && !first.includes(code) ? ` (${code})` : ''} (set OVNKUBE_ROUTE_DEBUG=1 for details)`;
}

/**
 * stdout and stderr for the CLI's short commands, written straight to the file descriptor
 * (fs.writeSync). process.stdout and process.stderr are built on first use, and building one
 * loads Node's stream modules (and `net` for a pipe): a few ms of a command that prints a page.
 * Node writes to files and pipes synchronously on Linux too, so the bytes and their order are
 * the same. On any error (EAGAIN from a descriptor someone made non-blocking, EPIPE, EBADF...)
 * the rest of that write and every later one go through the process stream, which handles
 * them as it always did; anything else asked of the writer (on, once, fd, isTTY...) is the
 * process stream's too. The long-running commands (agent, webhook) get the process streams
 * themselves (bin/ovnkube-route.ts). Here rather than in a file of its own: one file fewer for
 * the bundle's entry points to load.
 */
export function fdWriter(fd: 1 | 2, stream: () => NodeJS.WritableStream): NodeJS.WritableStream {
  let fallback: NodeJS.WritableStream | undefined;
  const write = (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    if (!fallback) {
      if (rest.length === 0) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
        let off = 0;
        try {
          while (off < buf.length) off += writeSync(fd, buf, off);
          return true;
        } catch {
          chunk = buf.subarray(off);
        }
      }
      // An encoding or callback argument, or an error: the process stream from here on.
      fallback = stream();
    }
    return (fallback.write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  };
  return new Proxy({} as NodeJS.WritableStream, {
    get: (_, key) => {
      if (key === 'write') return write;
      const s = fallback ?? stream();
      const v: unknown = Reflect.get(s, key);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(s) : v;
    },
  });
}
