import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import winston from 'winston';
import type { DeployEvent, EventListener } from '@deploykit/core';

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

/** Keeps every event in the per-run log file through winston (JSON lines with the run context). */
export function createRunLogListener(path: string, level: string): { listener: EventListener; close: () => Promise<void> } {
  mkdirSync(dirname(path), { recursive: true });
  const logger = winston.createLogger({
    level: level === 'warn' ? 'warn' : level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.File({ filename: path, options: { mode: 0o600 } })],
  });
  return {
    listener: (event) => {
      const { level: eventLevel, message, ...rest } = event;
      logger.log(eventLevel, message ?? event.type, rest);
    },
    close: () =>
      new Promise((resolve) => {
        logger.on('finish', () => resolve());
        logger.end();
      }),
  };
}

const LEVEL_ORDER = { debug: 0, info: 1, warn: 2, error: 3 } as const;

/** Human progress on stderr: script output prefixed `app:phase |`, phase starts and ends, stream progress. */
export function createTtyListener(options: { level: string; stream?: NodeJS.WritableStream; color?: boolean }): EventListener {
  const out = options.stream ?? process.stderr;
  const min = LEVEL_ORDER[(options.level as keyof typeof LEVEL_ORDER) ?? 'info'] ?? 1;
  const color = options.color ?? Boolean((out as NodeJS.WriteStream).isTTY);
  const dim = (text: string): string => (color ? `\x1b[2m${text}\x1b[0m` : text);
  const red = (text: string): string => (color ? `\x1b[31m${text}\x1b[0m` : text);
  return (event: DeployEvent) => {
    if (LEVEL_ORDER[event.level] < min) return;
    const prefix = event.app && event.phase ? `${event.app}:${event.phase}` : (event.app ?? 'deploy');
    let line: string | undefined;
    if (event.type === 'script.output') line = `${dim(`${prefix} |`)} ${event.message ?? ''}`;
    else if (event.message) line = `${dim(`${prefix} >`)} ${event.level === 'error' ? red(event.message) : event.message}`;
    if (line !== undefined) out.write(`${line}\n`);
  };
}
