import { closeSync, createWriteStream, mkdirSync, openSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { BusEvent, EventListener } from '@deploykit/core';

/** Writes every event as one JSON line to a file (`--events FILE`). */
export function createJsonlListener(path: string): { listener: EventListener; close: () => Promise<void> } {
  mkdirSync(dirname(path), { recursive: true });
  const stream: WriteStream = createWriteStream(path, { flags: 'a', mode: 0o600 });
  return {
    listener: (event) => {
      stream.write(`${JSON.stringify(event)}\n`);
    },
    close: () => new Promise((resolve) => stream.end(resolve)),
  };
}

/** Writes events as JSON lines on stdout (`--jsonl`); a reader that went away (the source died) is not our failure. */
export function createStdoutJsonlListener(): EventListener {
  let open = true;
  process.stdout.on('error', () => {
    open = false;
  });
  return (event) => {
    if (open) process.stdout.write(`${JSON.stringify(event)}\n`);
  };
}

/**
 * Keeps every event in the per-run log file through winston (JSON lines with the run context). The
 * file is created at once (mode 0600, so a read-only state dir shows here); winston itself loads
 * with the first event, so a run that logs nothing (`deploy list`) does not pay for loading it.
 * Events that arrive while it loads are kept in order and written once it is there.
 */
export function createRunLogListener(
  path: string,
  level: string,
): { listener: EventListener; close: () => Promise<void> } {
  mkdirSync(dirname(path), { recursive: true });
  closeSync(openSync(path, 'a', 0o600));
  type Logger = import('winston').Logger;
  let logger: Logger | undefined;
  let loading: Promise<Logger> | undefined;
  const pending: BusEvent[] = [];
  const write = (target: Logger, event: BusEvent): void => {
    const { level: eventLevel, message, ...rest } = event;
    target.log(eventLevel, message ?? event.type, rest);
  };
  const load = (): Promise<Logger> =>
    (loading ??= import('winston').then(({ default: winston }) => {
      logger = winston.createLogger({
        level: level === 'warn' ? 'warn' : level,
        // `timestamp` is when the event happened (its `time`), also for events kept while winston loaded.
        format: winston.format.combine(
          winston.format((info) =>
            Object.assign(info, { timestamp: typeof info.time === 'string' ? info.time : new Date().toISOString() }),
          )(),
          winston.format.json(),
        ),
        transports: [new winston.transports.File({ filename: path, options: { mode: 0o600 } })],
      });
      for (const event of pending.splice(0)) write(logger, event);
      return logger;
    }));
  return {
    listener: (event) => {
      if (logger !== undefined) return write(logger, event);
      pending.push(event);
      load().catch(() => undefined); // close() reports it
    },
    close: async () => {
      if (loading === undefined) return;
      const loaded = await loading;
      await new Promise<void>((resolve) => {
        loaded.on('finish', () => resolve());
        loaded.end();
      });
    },
  };
}

const LEVEL_ORDER = { debug: 0, info: 1, warn: 2, error: 3 } as const;

/**
 * Whether to colour what goes to `stream`: only on a terminal, and never when the NO_COLOR
 * environment variable is set to anything but "" (https://no-color.org) or `--no-color` was given
 * (`flag` false).
 */
export function useColor(stream: NodeJS.WritableStream, flag = true, env: NodeJS.ProcessEnv = process.env): boolean {
  if (!flag || (env.NO_COLOR !== undefined && env.NO_COLOR !== '')) return false;
  return Boolean((stream as NodeJS.WriteStream).isTTY);
}

/** Styles of the plain lines; identity functions when colour is off. */
export interface LineStyle {
  readonly dim: (text: string) => string;
  readonly red: (text: string) => string;
}

/** ANSI styles when `color`, else none. */
export function lineStyle(color: boolean): LineStyle {
  return {
    dim: (text) => (color ? `\x1b[2m${text}\x1b[0m` : text),
    red: (text) => (color ? `\x1b[31m${text}\x1b[0m` : text),
  };
}

/** An event as one human line (`app:phase | script output`, `app > message`); undefined for events without a message. */
export function formatEventLine(event: BusEvent, style: LineStyle): string | undefined {
  const prefix = event.app && event.phase ? `${event.app}:${event.phase}` : (event.app ?? 'deploy');
  if (event.type === 'script.output') return `${style.dim(`${prefix} |`)} ${event.message ?? ''}`;
  if (event.message)
    return `${style.dim(`${prefix} >`)} ${event.level === 'error' ? style.red(event.message) : event.message}`;
  return undefined;
}

/** Whether an event at `level` is shown when the threshold is `min` (debug, info, warn, error). */
export function shownAtLevel(level: BusEvent['level'], min: string): boolean {
  return LEVEL_ORDER[level] >= (LEVEL_ORDER[min as keyof typeof LEVEL_ORDER] ?? 1);
}

/** Human progress on stderr: script output prefixed `app:phase |`, phase starts and ends, stream progress. */
export function createTtyListener(options: {
  level: string;
  stream?: NodeJS.WritableStream;
  color?: boolean;
}): EventListener {
  const out = options.stream ?? process.stderr;
  const style = lineStyle(options.color ?? useColor(out));
  return (event: BusEvent) => {
    if (!shownAtLevel(event.level, options.level)) return;
    const line = formatEventLine(event, style);
    if (line !== undefined) out.write(`${line}\n`);
  };
}
