import { formatSize } from './format-time.js';

/** tqdm's default `mininterval`: at most one frame per 100 ms. */
const FRAME_INTERVAL_MS = 100;

function formatElapsed(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const pad = (value: number): string => String(value).padStart(2, '0');
  return seconds >= 3600
    ? `${Math.floor(seconds / 3600)}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`
    : `${pad(Math.floor(seconds / 60))}:${pad(seconds % 60)}`;
}

/**
 * ffl's tqdm progress bar for an unknown size (`bases/Progress.py`: `{desc}: {n_fmt} [{elapsed},
 * {rate_fmt}]{postfix}`), written to stderr as `\r`-separated frames and ended by a newline, so an
 * error tail taken from ffl's stderr is mostly progress-bar text (reference §8).
 */
export class ProgressBar {
  readonly #output: NodeJS.WritableStream;
  readonly #postfix: string;
  readonly #started = Date.now();
  #lastFrameAt = 0;
  #lastWidth = 0;
  #bytes = 0;
  #closed = false;

  /** `postfix` is ffl's extra text (` P2P direct` on the sender's WebRTC path), rendered after `, `. */
  constructor(output: NodeJS.WritableStream, postfix = '') {
    this.#output = output;
    this.#postfix = postfix;
  }

  /** Sets the byte count; draws a frame when the last one is at least 100 ms old. */
  update(bytes: number): void {
    this.#bytes = bytes;
    const now = Date.now();
    if (this.#closed || now - this.#lastFrameAt < FRAME_INTERVAL_MS) return;
    this.#lastFrameAt = now;
    this.#draw(now);
  }

  /** Draws the final frame and the newline tqdm's `close()` (leave=True) writes. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#draw(Date.now());
    this.#closed = true;
    this.#output.write('\n');
  }

  #draw(now: number): void {
    const elapsed = now - this.#started;
    const rate = elapsed > 0 ? Math.floor((this.#bytes * 1000) / elapsed) : 0;
    const rateText = rate > 0 ? `${formatSize(rate)}/sec` : '0/sec';
    const frame = `Progress: ${formatSize(this.#bytes)} [${formatElapsed(elapsed)}, ${rateText}]${this.#postfix === '' ? '' : `, ${this.#postfix}`}`;
    // tqdm pads a shorter frame with spaces so the previous one is fully overwritten.
    const padding = ' '.repeat(Math.max(0, this.#lastWidth - frame.length));
    this.#lastWidth = frame.length;
    this.#output.write(`\r${frame}${padding}`);
  }
}
