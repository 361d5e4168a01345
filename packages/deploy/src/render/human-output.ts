import type { BusEvent, EventListener } from '@deploykit/core';
import { formatEventLine, lineStyle, shownAtLevel } from './renderers.js';
import { describeTransfer, renderFrame, RunView, type FrameStyle } from './run-view.js';

/** Options of createHumanOutput. */
export interface HumanOutputOptions {
  readonly level: string;
  readonly stream: NodeJS.WriteStream;
  readonly color: boolean;
  /** Draw the live view when the stream is a terminal (the command can take it: nothing else writes to the terminal meanwhile). */
  readonly live: boolean;
  /** Not on a terminal: a `progress:` line this often while a part is in flight (ms). */
  readonly progressEveryMs: number;
}

/** What writes for humans: a listener, and close() that takes the live view off the screen. */
export interface HumanOutput {
  readonly listener: EventListener;
  close(): Promise<void>;
}

/** How often the live view redraws on its own (elapsed time, stall counter). */
const TICK_MS = 1000;

/** Redraws at most this often when events come fast. */
const REDRAW_MS = 100;

/**
 * Human output on stderr. Plain lines as always (`app:phase | output`, `app > message`); while a
 * part is in flight, a `app > progress: ...` line every `progressEveryMs` off a terminal. On a
 * terminal with `live`, once the run shows steps or parts (a plan, a step, bytes), the live view
 * takes over the bottom of the screen (log-update, loaded only then): each step with its state, the
 * current part's bytes of its total, rate and ETA, the bundle's bytes of all parts, the path, how long
 * no byte moved; the plain lines keep scrolling above it, except the per-stream progress lines it shows.
 */
export function createHumanOutput(options: HumanOutputOptions): HumanOutput {
  const out = options.stream;
  const style = lineStyle(options.color);
  const frameStyle: FrameStyle = {
    dim: style.dim,
    red: style.red,
    bold: (text) => (options.color ? `\x1b[1m${text}\x1b[0m` : text),
    green: (text) => (options.color ? `\x1b[32m${text}\x1b[0m` : text),
  };
  const view = new RunView();
  const live = options.live && out.isTTY === true;
  type LogUpdate = ReturnType<typeof import('log-update').createLogUpdate>;
  let logUpdate: LogUpdate | undefined;
  let loading: Promise<void> | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let redrawPending: NodeJS.Timeout | undefined;
  let lastProgressLine = Date.now();
  let app: string | undefined;

  const draw = (): void => {
    if (logUpdate !== undefined && !closed)
      logUpdate(renderFrame(view, Date.now(), frameStyle, out.columns || 100).join('\n'));
  };
  const scheduleDraw = (): void => {
    if (redrawPending !== undefined) return;
    redrawPending = setTimeout(() => {
      redrawPending = undefined;
      draw();
    }, REDRAW_MS);
    redrawPending.unref();
  };
  const writeLine = (line: string): void => {
    if (logUpdate === undefined) return void out.write(`${line}\n`);
    // persist() takes the frame off, writes the line where it was; the frame comes back below it.
    logUpdate.persist(line);
    draw();
  };
  const startLive = (): void => {
    loading ??= import('log-update').then(({ createLogUpdate }) => {
      if (closed) return;
      // A terminal that reports no size (a pty nobody sized) would get an empty frame.
      const sized = Object.assign(Object.create(out) as NodeJS.WriteStream, {
        write: (chunk: string) => out.write(chunk),
        get columns() {
          return out.columns || 100;
        },
        get rows() {
          return out.rows || 40;
        },
      });
      logUpdate = createLogUpdate(sized);
      timer = setInterval(draw, TICK_MS);
      timer.unref();
      draw();
    });
  };
  if (!live) {
    timer = setInterval(
      () => {
        const transfer = describeTransfer(view);
        if (transfer === undefined || Date.now() - lastProgressLine < options.progressEveryMs) return;
        lastProgressLine = Date.now();
        out.write(`${style.dim(`${app ?? 'deploy'} >`)} progress: ${transfer}\n`);
      },
      Math.min(1000, options.progressEveryMs),
    );
    timer.unref();
  }

  return {
    listener: (event: BusEvent) => {
      const changed = view.apply(event);
      if (app === undefined && event.app !== undefined && !event.app.includes('@')) app = event.app;
      if (live && changed && view.structured) {
        if (logUpdate === undefined) startLive();
        else scheduleDraw();
      }
      if (!shownAtLevel(event.level, options.level)) return;
      // The live view shows the bytes of the part in flight; its progress lines would only scroll.
      if (logUpdate !== undefined && event.type === 'stream.progress') return;
      const line = formatEventLine(event, style);
      if (line !== undefined) writeLine(line);
    },
    async close() {
      closed = true;
      clearInterval(timer);
      clearTimeout(redrawPending);
      await loading?.catch(() => undefined);
      if (logUpdate !== undefined) {
        logUpdate.clear();
        logUpdate.done();
      }
    },
  };
}
