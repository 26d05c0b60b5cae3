/**
 * Flag tables for the long-running commands (`webhook`, `agent`): one table per command
 * drives parsing, environment-variable fallback, defaults and the --help rows, so help text
 * cannot drift from what is parsed. A flag beats its environment variable; list variables
 * are comma-separated. Pure: the caller passes argv and the environment in.
 */
import { closest } from './suggest.js';
import { parseArgs } from 'node:util';

export interface FlagSpec {
  /** Environment variable that sets the flag when it is not given. */
  env: string;
  /** Placeholder shown in --help, e.g. FILE, N, DURATION. */
  value: string;
  /** Repeatable flag (list-valued). */
  multiple?: boolean;
  /** Shown as "required" in --help; the command's validation enforces it. */
  required?: boolean;
  default?: string;
  help: string;
}

/** A flag's value and where it came from (`--name` or `$ENV`), for error messages. */
export interface FlagValue {
  value: string | string[] | undefined;
  from: string;
}

/** The --help rows of a table: "  --name VALUE" and an indented help line. */
function flagHelpRows(table: Record<string, FlagSpec>): string[] {
  return Object.entries(table).map(([name, f]) => {
    const extra = [f.required ? 'required' : '', f.default !== undefined ? `default ${f.default}` : '', `env ${f.env}`];
    return `  --${name} ${f.value}\n      ${f.help} (${extra.filter(Boolean).join('; ')})`;
  });
}

/** A command's whole --help: usage line, description paragraph, then every flag of the table. */
export function flagHelp(usage: string, description: string[], table: Record<string, FlagSpec>): string {
  return (
    [
      usage,
      '',
      ...description,
      '',
      'Flags (each can also be set by its environment variable; the flag wins; list',
      'variables are comma-separated):',
      ...flagHelpRows(table),
      '  -h, --help',
      '      show this help',
    ].join('\n') + '\n'
  );
}

/** Reads flags of a parsed command line, falling back to the environment, then the default. */
export interface FlagReader {
  raw(name: string): FlagValue;
  /** A single value; undefined when unset or empty. */
  one(name: string): string | undefined;
  /** A list value ([] when unset). */
  many(name: string): string[];
  /** Where the flag's value came from. */
  from(name: string): string;
}

/** Parse argv strictly against a table; `fail` is called (and must throw) on a parse error. */
export function readFlags(
  table: Record<string, FlagSpec>,
  argv: string[],
  env: Record<string, string | undefined>,
  fail: (msg: string) => never,
): FlagReader {
  const options = Object.fromEntries(
    Object.entries(table).map(([name, f]) => [name, { type: 'string' as const, multiple: f.multiple === true }]),
  );
  let values: Record<string, string | string[] | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, allowPositionals: false, strict: true }));
  } catch (e) {
    const err = e as Error & { code?: string };
    const typed = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /Unknown option '([^'=]+)/.exec(err.message)?.[1] : undefined;
    if (typed !== undefined) {
      const guess = closest(typed.replace(/^-+/, '').toLowerCase(), Object.keys(table));
      return fail(`Unknown option '${typed}'${guess ? `; did you mean '--${guess}'?` : ''}`);
    }
    return fail(err.message);
  }
  const raw = (name: string): FlagValue => {
    const f = table[name];
    if (!f) throw new Error(`no flag --${name} in the table`);
    const v = values[name] as string | string[] | undefined;
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) return { value: v, from: `--${name}` };
    const e = env[f.env];
    if (e !== undefined && e !== '')
      return {
        value: f.multiple
          ? e
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : e,
        from: `$${f.env}`,
      };
    return { value: f.default, from: `--${name}` };
  };
  return {
    raw,
    one: (name) => {
      const v = raw(name).value;
      return v === undefined || v === '' ? undefined : Array.isArray(v) ? v[v.length - 1] : v;
    },
    many: (name) => {
      const v = raw(name).value;
      return v === undefined ? [] : Array.isArray(v) ? v : [v];
    },
    from: (name) => raw(name).from,
  };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parse a duration as Go writes them: 500ms, 2s, 1.5s, 10m, 1h ("0" is zero); NaN when malformed. */
export function parseDuration(text: string): number {
  if (text === '0') return 0;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  return m ? Math.round(Number(m[1]) * UNITS[m[2]!]!) : NaN;
}
