/**
 * The agent's logger: one JSON object per line on a stream (stderr in production), with a
 * level filter. Tests pass a logger that collects lines, so what was logged can be asserted.
 */

export const AGENT_LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type AgentLogLevel = (typeof AGENT_LOG_LEVELS)[number];

export interface AgentLogger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

const RANK: Record<AgentLogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** A JSON-lines logger writing entries at `level` or more severe to `stream`. */
export function jsonLogger(stream: NodeJS.WritableStream, level: AgentLogLevel = 'info', now: () => Date = () => new Date()): AgentLogger {
  const at = (lvl: AgentLogLevel) => (msg: string, fields: Record<string, unknown> = {}): void => {
    if (RANK[lvl] > RANK[level]) return;
    const entry: Record<string, unknown> = { time: now().toISOString(), level: lvl, msg };
    for (const [k, v] of Object.entries(fields)) entry[k] = v instanceof Error ? v.message : v;
    stream.write(JSON.stringify(entry) + '\n');
  };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

/** A logger that drops everything. */
export const silentLogger: AgentLogger = { error() {}, warn() {}, info() {}, debug() {} };
