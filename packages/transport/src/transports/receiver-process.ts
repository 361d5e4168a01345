import type { Host, HostProcess, RunResult, Secret } from '@deploykit/core';
import type { StreamEvent, StreamStage } from '../contract.js';
import { readLines } from '../pipeline/jsonl-lines.js';
import { StageFailureError, tailText, type StageFailure } from '../pipeline/stage-failure.js';
import type { ReceiverDone, SessionContext } from './transport.js';

/** A running `deploy stream receive` on the target, with its JSONL events decoded. */
export interface ReceiverProcess {
  readonly process: HostProcess;
  /** Resolves on the receiver's `ready` event; rejects when it ends first. */
  readonly ready: Promise<void>;
  /** Resolves with its `done` event once it exited 0; rejects with StageFailureError otherwise. */
  readonly finished: Promise<ReceiverDone>;
  consumerBytes(): number;
  /** The process result once it ended. */
  readonly exited: Promise<RunResult>;
}

/** Options of startReceiverProcess. */
export interface StartReceiverOptions {
  readonly host: Host;
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string | Secret>>;
  readonly stdin: 'pipe' | 'ignore';
  /**
   * Turns an exit without a `done`/`failed` event into a failure; transports override it to tell a
   * dropped connection (sender stage) from a dead receiver.
   */
  /** Forward the receiver's own `connected`/`path` events (ffl knows better from its hook). Default true. */
  readonly forwardLinkEvents?: boolean;
  readonly classifyExit?: (result: RunResult) => Pick<StageFailure, 'stage' | 'code' | 'message' | 'hint'>;
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

/** Starts the receiving `deploy` on a host and follows its events; failures go to context.report. */
export function startReceiverProcess(context: SessionContext, options: StartReceiverOptions): ReceiverProcess {
  const proc = options.host.spawn({
    argv: options.argv,
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.stdin === 'pipe' ? { stdin: 'pipe' as const } : {}),
    label: `receiver ${context.stream}`,
    maxBuffer: 64 * 1024,
  });
  proc.stdin?.on('error', () => undefined);
  let consumerBytes = 0;
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
  proc.stderr.on('data', (chunk: Buffer) => {
    stderrChunks.push(chunk.toString('utf8'));
    if (stderrChunks.length > 64) stderrChunks.splice(0, stderrChunks.length - 64);
  });
  const lines = readLines(proc.stdout, (line) => {
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
      case 'connected':
      case 'path':
        if (options.forwardLinkEvents !== false) context.emit({ ...event, stream: context.stream });
        return;
      default:
        context.emit({ ...event, stream: context.stream });
    }
  });
  const exited = proc.wait();
  const finished = (async (): Promise<ReceiverDone> => {
    const result = await exited;
    await Promise.race([lines, new Promise((resolve) => setTimeout(resolve, 500))]);
    if (result.exitCode === 0 && done !== undefined && failure === undefined) return done;
    if (failure === undefined) {
      const stderr = stderrChunks.join('') || result.stderr;
      const classified = options.classifyExit?.(result) ?? {
        stage: 'receiver' as const,
        code: 'RECEIVER_DIED',
        message: `the receiver on ${options.host.name} ended without a result (${describeExit(result)})`,
        hint: `Look at the stderr tail; run \`deploy stream receive --help\` on ${options.host.name} to check it is installed.`,
      };
      failure = {
        ...classified,
        exitCode: result.exitCode,
        signal: result.signal,
        stderrTail: tailText(stderr, context.secrets),
        at: Date.now(),
      };
      context.report(failure);
    }
    failReady(new StageFailureError(failure));
    throw new StageFailureError(failure);
  })();
  finished.catch(() => undefined);
  return { process: proc, ready, finished, consumerBytes: () => consumerBytes, exited };
}

/** `exit 3` / `killed by SIGKILL`, for messages. */
export function describeExit(result: Pick<RunResult, 'exitCode' | 'signal'>): string {
  if (result.signal !== null) return `killed by ${result.signal}`;
  return `exit ${String(result.exitCode)}`;
}
