/**
 * The one logger of both processes: pino, one JSON object per line on a stream (stderr in
 * production), with label levels (`"level":"warn"`) and ISO times, so the agent's and the
 * webhook's lines have one shape. Code that logs about one pod or one Route logs through a
 * child logger bound to it (forPod, forRoute). Tests pass a logger on a stream that collects
 * lines (memoryLogger), so what was logged can be asserted.
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** Every level either process accepts, most severe first ('silent' logs nothing). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Error values in a log line become their message: no stack traces in the logs. */
function plainErrors(obj: Record<string, unknown>): Record<string, unknown> {
  let out = obj;
  for (const [k, v] of Object.entries(obj)) {
    if (v instanceof Error) {
      if (out === obj) out = { ...obj };
      out[k] = v.message;
    }
  }
  return out;
}

/** A JSON-lines logger writing entries at `level` or more severe to `stream`. */
export function createLogger(stream: NodeJS.WritableStream | DestinationStream, level: LogLevel = 'info'): Logger {
  return pino(
    {
      level,
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: plainErrors },
    },
    stream as DestinationStream,
  );
}

/** A logger that drops everything. */
export const silentLogger: Logger = pino({ level: 'silent' });

/** A child logger for lines about one pod (`pod: namespace/name`). */
export function forPod(log: Logger, pod: string): Logger {
  return log.child({ pod });
}

/** A child logger for lines about one Route (`route: name`). */
export function forRoute(log: Logger, route: string): Logger {
  return log.child({ route });
}

/** One line a memoryLogger collected: its level, message and the other fields. */
export interface LogLine {
  level: string;
  msg: string;
  time: string;
  [field: string]: unknown;
}

/**
 * A logger whose lines are parsed back into `lines` as they are written (through the same
 * formatting as production, so tests see the real shape).
 */
export function memoryLogger(level: LogLevel = 'debug', onLine?: (l: LogLine) => void): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream: DestinationStream = {
    write(s: string) {
      for (const part of s.split('\n')) {
        if (!part) continue;
        const l = JSON.parse(part) as LogLine;
        lines.push(l);
        onLine?.(l);
      }
    },
  };
  return Object.assign(createLogger(stream, level), { lines });
}
