import { tailLines } from '@deploykit/host';
import { redact, TransportError, type Secret } from '@deploykit/core';
import type { StreamStage } from '../contract.js';

/** One observed failure of one stage of a stream attempt. */
export interface StageFailure {
  readonly stage: StreamStage;
  readonly code: string;
  readonly message: string;
  readonly exitCode?: number | null;
  readonly signal?: string | null;
  readonly stderrTail?: string;
  /** When it happened (ms since epoch, on the host that saw it). */
  readonly at: number;
  /**
   * True for failures that are a consequence of another stage failing (a producer killed by SIGPIPE
   * because the receiver went away, EPIPE on a pipe): they only win when nothing else failed.
   */
  readonly consequential?: boolean;
  readonly hint?: string;
}

/** tqdm's `[elapsed<remaining, rate]` / `[elapsed, rate]` block: what marks a progress-bar frame. */
const PROGRESS_FRAME = /\[\d+:\d\d(?::\d\d)?(?:<[^,\]]*)?, [^\]]*\]|\d+%\|/;

/**
 * Removes progress bars from a terminal text: of a line redrawn with `\r` only what a terminal
 * would show last is kept, and dropped when that is a progress-bar frame (tqdm, as ffl prints on
 * stderr, reference §8) or blank. So an error tail shows the error, not hundreds of bar frames.
 */
export function stripProgressFrames(text: string): string {
  return text
    .split('\n')
    .flatMap((line) => {
      if (!line.includes('\r')) return [line];
      const shown = (
        line
          .split('\r')
          .filter((frame) => frame.trim() !== '')
          .at(-1) ?? ''
      ).trimEnd();
      return shown === '' || PROGRESS_FRAME.test(shown) ? [] : [shown];
    })
    .join('\n');
}

/** Keeps the last `lines` lines (at most 2000 characters) of a stderr text, progress bars removed, secrets masked. */
export function tailText(text: string, secrets: readonly (Secret | string)[] = [], lines = 12): string {
  const kept = tailLines(stripProgressFrames(text), lines);
  return redact(kept.length > 2000 ? kept.slice(-2000) : kept, secrets);
}

/**
 * Picks the failure to blame: the earliest failure that is not a mere consequence of another, else
 * the earliest of all. Returns undefined for an empty list.
 */
export function pickFirstFailure(failures: readonly StageFailure[]): StageFailure | undefined {
  const causes = failures.filter((failure) => failure.consequential !== true);
  const pool = causes.length > 0 ? causes : failures;
  return [...pool].sort((a, b) => a.at - b.at)[0];
}

/** True when a process ended the way a process ends when its reader went away (SIGPIPE, exit 141). */
export function isBrokenPipeExit(exitCode: number | null, signal: string | null): boolean {
  return signal === 'SIGPIPE' || exitCode === 141;
}

/** A thrown wrapper so a StageFailure can travel through promise rejections. */
export class StageFailureError extends TransportError {
  readonly failure: StageFailure;
  constructor(failure: StageFailure) {
    super(failure.code, `${failure.stage} failed: ${failure.message}`, {
      ...(failure.hint === undefined ? {} : { hint: failure.hint }),
      details: { stage: failure.stage, exitCode: failure.exitCode ?? null, stderrTail: failure.stderrTail ?? '' },
    });
    this.failure = failure;
  }
}

/** Formats a failure for one line of human output: `receiver failed (exit 1): message`. */
export function describeFailure(failure: StageFailure): string {
  const status =
    failure.signal != null
      ? ` (killed by ${failure.signal})`
      : failure.exitCode != null
        ? ` (exit ${failure.exitCode})`
        : '';
  return `${failure.stage} failed${status}: ${failure.message}`;
}
