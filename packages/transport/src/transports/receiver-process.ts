import { describeExit } from '@deploykit/core';
import type { StreamEvent, StreamStage } from '../contract.js';
import { readLines } from '../pipeline/jsonl-lines.js';
import { StageFailureError, tailText, type StageFailure } from '../pipeline/stage-failure.js';
import type { SenderChannel, SenderContext } from './transport.js';

/** The receiver's final word: the payload it verified and handed to the consumer. */
export interface ReceiverDone {
  readonly bytes: number;
  readonly sha256: string;
  readonly elapsedMs: number;
}

/** A `deploy stream receive` on the target, followed through its JSONL events. */
export interface FollowedReceiver {
  /** Resolves on the receiver's `ready` event; rejects when it ends first. */
  readonly ready: Promise<void>;
  /** Resolves with its `done` event once it exited 0; rejects with StageFailureError otherwise. */
  readonly finished: Promise<ReceiverDone>;
  consumerBytes(): number;
  /** True once the receiver said it has the whole stream (its `received` event). */
  received(): boolean;
}

/** Parses one JSONL line of the receiver protocol; undefined for anything else. */
export function parseReceiverEvent(line: string): StreamEvent | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(line) as { kind?: unknown; stream?: unknown };
    return typeof value.kind === 'string' && typeof value.stream === 'string' ? (value as StreamEvent) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Follows the `deploy stream receive` a channel started: decodes its events, forwards progress,
 * reports its failure (or, when it ended without one, what the transport or its exit says).
 */
export function followReceiver(context: SenderContext, channel: SenderChannel): FollowedReceiver {
  let consumerBytes = 0;
  let received = false;
  let done: ReceiverDone | undefined;
  let failure: StageFailure | undefined;
  let markReady!: () => void;
  let failReady!: (error: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  ready.catch(() => undefined);
  const stderrChunks: string[] = [];
  channel.errors.on('data', (chunk: Buffer) => {
    stderrChunks.push(chunk.toString('utf8'));
    if (stderrChunks.length > 64) stderrChunks.splice(0, stderrChunks.length - 64);
  });
  // The sending side knows the path of a pipe or a file; the receiver's guess is not needed then.
  if (channel.path !== undefined) context.emit({ kind: 'path', stream: context.stream, path: channel.path });
  const lines = readLines(channel.output, (line) => {
    const event = parseReceiverEvent(line);
    if (event === undefined) return;
    switch (event.kind) {
      case 'ready':
        markReady();
        return;
      case 'progress':
        consumerBytes = event.bytes;
        context.emit({ ...event, stream: context.stream, side: 'consumer' });
        return;
      case 'received':
        received = true;
        context.emit({ ...event, stream: context.stream });
        return;
      case 'done':
        done = { bytes: event.bytes, sha256: event.sha256, elapsedMs: event.elapsedMs };
        return;
      case 'failed':
        failure = {
          stage: event.stage as StreamStage,
          code: event.code,
          message: event.message,
          ...(event.exitCode === undefined ? {} : { exitCode: event.exitCode }),
          ...(event.stderrTail === undefined ? {} : { stderrTail: tailText(event.stderrTail, context.secrets) }),
          at: Date.parse(event.firstFailureAt) || Date.now(),
        };
        context.report(failure);
        return;
      case 'path':
        if (channel.path === undefined) context.emit({ ...event, stream: context.stream });
        return;
      default:
        context.emit({ ...event, stream: context.stream });
    }
  });
  const finished = (async (): Promise<ReceiverDone> => {
    const exit = await channel.exited;
    await Promise.race([lines, new Promise((resolve) => setTimeout(resolve, 500).unref())]);
    const { result } = exit;
    if (result.exitCode === 0 && done !== undefined && failure === undefined && exit.failure === undefined) return done;
    if (failure === undefined) {
      const classified = exit.failure ?? {
        stage: 'receiver' as const,
        code: 'RECEIVER_DIED',
        message: `the receiver on ${context.target.name} ended without a result (${result.exitCode === 255 && context.target.kind === 'ssh' ? 'killed on the target, ssh exit 255' : describeExit(result)})`,
        hint: `Look at the stderr tail; run \`deploy stream receive --help\` on ${context.target.name} to check it is installed.`,
      };
      failure = {
        ...classified,
        exitCode: result.exitCode,
        signal: result.signal,
        stderrTail: tailText(stderrChunks.join('') || result.stderr, context.secrets),
        at: Date.now(),
      };
      context.report(failure);
    }
    failReady(new StageFailureError(failure));
    throw new StageFailureError(failure);
  })();
  finished.catch(() => undefined);
  return { ready, finished, consumerBytes: () => consumerBytes, received: () => received };
}

/** `exit 3` / `killed by SIGKILL`, for messages (one wording everywhere: it lives in core). */
export { describeExit };
