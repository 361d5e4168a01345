import { mkdtemp, rm } from 'node:fs/promises';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeExit, newRunId, type Arg, type Host, type RunResult, type Secret } from '@deploykit/core';
import {
  DEFAULT_READY_SECONDS,
  DEFAULT_RETRIES,
  DEFAULT_STALL_SECONDS,
  type ConsumerSpec,
  type StreamEvent,
  type StreamPath,
  type StreamTrailer,
  type TransportName,
} from '../contract.js';
import { FrameEncoder } from '../framing/frame-encoder.js';
import { TAR_ERROR_CODES } from '../receive/tar-guard.js';
import { buildCleanupArgv, buildReceiverArgv } from '../transports/receiver-argv.js';
import { followReceiver, type ReceiverDone } from '../transports/receiver-process.js';
import { resolveTransport } from '../transports/registry.js';
import type {
  PreflightContext,
  ProducerFile,
  SenderContext,
  Transport,
  TransportOptions,
} from '../transports/transport.js';
import { waitAtMost } from './timing.js';
import { ByteMeter } from './byte-meter.js';
import {
  describeFailure,
  isBrokenPipeExit,
  pickFirstFailure,
  StageFailureError,
  tailText,
  type StageFailure,
} from './stage-failure.js';

/** Inputs of one stream. */
export interface RunStreamOptions {
  /** Stream name (`volumes`, `database`...). */
  readonly name: string;
  readonly transport: TransportName | Transport;
  /** Where the producer runs (usually LocalHost). */
  readonly source: Host;
  /** Where the receiver and the consumer run. */
  readonly target: Host;
  /** Producer argv, run on `source`. */
  readonly producer: readonly Arg[];
  /**
   * Instead of running `producer`: read the payload from this stream (e.g. our own stdin). End =
   * success, an error = failure; a stream cannot be re-read, so retries are off.
   */
  readonly producerStream?: Readable;
  readonly producerEnv?: Readonly<Record<string, string | Secret>>;
  readonly producerCwd?: string;
  readonly consumer: ConsumerSpec;
  readonly runId?: string;
  /** Stall window: after the first payload byte reached the receiver, no byte moved for this long fails the attempt (default 60). */
  readonly stallSeconds?: number;
  readonly retries?: number;
  /** Expected payload size: ETA in progress events and the scp space check. */
  readonly estimatedBytes?: number;
  /** How `deploy` is started on the target (default ['deploy']). */
  readonly deployCommand?: readonly string[];
  readonly transportOptions?: TransportOptions;
  /** Skip preflight (the caller ran it already). */
  readonly skipPreflight?: boolean;
  /** Extra secrets to mask in stderr tails. */
  readonly secrets?: readonly Secret[];
  /** Receives every event of the stream. */
  readonly onEvent?: (event: StreamEvent) => void;
  /** Aborts the stream (every stage, both hosts). */
  readonly signal?: AbortSignal;
  /**
   * Readiness window: how long an attempt may take from its start to the first payload byte at the
   * receiver (target command start, ffl's link and WebRTC setup); the stall window starts at that
   * byte (default DEFAULT_READY_SECONDS, 120). Also sent to the target as `--ready-seconds`.
   */
  readonly readySeconds?: number;
}

/** One failed attempt, as reported in the result. */
export interface AttemptFailure extends Omit<StageFailure, 'at'> {
  readonly attempt: number;
  readonly at: string;
}

/** What one stream did. */
export interface StreamResult {
  readonly stream: string;
  readonly transport: TransportName;
  readonly ok: boolean;
  /** Payload bytes delivered (the last attempt's producer bytes when failed). */
  readonly bytes: number;
  readonly sha256?: string;
  readonly elapsedMs: number;
  /** Bytes per second over the successful attempt. */
  readonly rate: number;
  readonly path?: StreamPath;
  readonly retries: number;
  readonly failures: readonly AttemptFailure[];
  /** The failure that ended the stream (the first failing stage of the last attempt). */
  readonly failure?: AttemptFailure;
}

/** How often the watchdog looks and progress may be emitted. */
const TICK_MS = 250;
const PROGRESS_INTERVAL_MS = 1000;
/** After the first failure, how long other stages get to report theirs (for attribution). */
const SETTLE_MS = 1500;
/** How much longer to wait for the cause when only consequential failures (EPIPE) were reported. */
const CAUSE_WAIT_MS = 5000;

/** A started transfer of one attempt: the transport's channel and the receiver followed through it. */
interface SenderSession {
  readonly sink: Writable;
  readonly producerFile?: ProducerFile;
  readonly ready: Promise<unknown>;
  readonly finished: Promise<ReceiverDone>;
  consumerBytes(): number;
  /** The receiver has every byte and the trailer: what is left is finishing, not moving bytes. */
  received(): boolean;
  abort(): Promise<void>;
}

/** Opens the transport's channel into `deploy stream receive` on the target and follows the receiver. */
async function openSession(
  options: AttemptOptions,
  context: Omit<SenderContext, 'targetArgv'>,
): Promise<SenderSession> {
  const full: SenderContext = {
    ...context,
    targetArgv: (input) =>
      buildReceiverArgv({
        deployCommand: options.deployCommand,
        stream: options.name,
        runId: options.runId,
        consumer: options.consumer,
        stallSeconds: options.stallSeconds,
        readySeconds: options.readySeconds,
        input,
      }),
  };
  const channel = await options.transport.openSender(full);
  const receiver = followReceiver(full, channel);
  return {
    sink: channel.sink,
    ...(channel.producerFile === undefined ? {} : { producerFile: channel.producerFile }),
    // A pipe reaches the receiver before any byte: wait for its `ready`. Others start it later.
    ready: channel.interactive ? Promise.all([channel.ready, receiver.ready]) : channel.ready,
    finished: receiver.finished,
    consumerBytes: () => receiver.consumerBytes() + channel.transportBytes(),
    received: () => receiver.received(),
    abort: () => channel.abort(),
  };
}

type AttemptOutcome =
  | { ok: true; done: ReceiverDone; producerBytes: number; elapsedMs: number; path?: StreamPath }
  | { ok: false; failure: StageFailure; producerBytes: number };

/** Failure codes that are properties of the payload itself: another attempt cannot succeed. */
const NOT_RETRIED = new Set<string>([TAR_ERROR_CODES.unsafe, TAR_ERROR_CODES.special]);

/**
 * Runs one stream on the source side: producer (on `source`) -> FrameEncoder -> transport ->
 * `deploy stream receive` on `target` -> consumer. Meters both ends, aborts everything on a stall,
 * blames the first failing stage, cleans both hosts, and re-runs the whole stream up to `retries`
 * times. Never throws for a stream failure (see StreamResult.ok); preflight errors are thrown.
 */
export async function runStream(options: RunStreamOptions): Promise<StreamResult> {
  const transport = typeof options.transport === 'string' ? resolveTransport(options.transport) : options.transport;
  const stallSeconds = options.stallSeconds ?? DEFAULT_STALL_SECONDS;
  const readySeconds = options.readySeconds ?? DEFAULT_READY_SECONDS;
  const retries = options.producerStream !== undefined ? 0 : (options.retries ?? DEFAULT_RETRIES);
  const runId = options.runId ?? newRunId();
  const deployCommand = options.deployCommand ?? ['deploy'];
  const emit = (event: StreamEvent): void => options.onEvent?.(event);
  const preflight: PreflightContext = {
    stream: options.name,
    source: options.source,
    target: options.target,
    deployCommand,
    ...(options.estimatedBytes === undefined ? {} : { estimatedBytes: options.estimatedBytes }),
    options: options.transportOptions ?? {},
  };
  if (options.skipPreflight !== true) await transport.preflight(preflight);
  const failures: AttemptFailure[] = [];
  const started = Date.now();
  let lastBytes = 0;
  for (let attempt = 1; attempt <= retries + 1; attempt += 1) {
    if (attempt > 1) {
      const reason = failures.at(-1);
      emit({
        kind: 'retry',
        stream: options.name,
        attempt,
        reason: reason === undefined ? 'previous attempt failed' : describeFailure(reason as unknown as StageFailure),
      });
    }
    const outcome = await runAttempt({
      ...options,
      transport,
      stallSeconds,
      readySeconds,
      runId,
      deployCommand,
      preflight,
      attempt,
      emit,
    });
    if (outcome.ok) {
      emit({
        kind: 'done',
        stream: options.name,
        bytes: outcome.done.bytes,
        sha256: outcome.done.sha256,
        elapsedMs: outcome.elapsedMs,
      });
      return {
        stream: options.name,
        transport: transport.name,
        ok: true,
        bytes: outcome.done.bytes,
        sha256: outcome.done.sha256,
        elapsedMs: Date.now() - started,
        rate: outcome.elapsedMs > 0 ? Math.round((outcome.done.bytes * 1000) / outcome.elapsedMs) : outcome.done.bytes,
        ...(outcome.path === undefined ? {} : { path: outcome.path }),
        retries: attempt - 1,
        failures,
      };
    }
    lastBytes = outcome.producerBytes;
    const { at, ...rest } = outcome.failure;
    const refused =
      NOT_RETRIED.has(rest.code) && rest.hint === undefined
        ? {
            hint: 'The target refuses an entry the producer writes (named above); retrying cannot help: remove it from what is streamed.',
          }
        : {};
    const failure: AttemptFailure = { ...rest, ...refused, attempt, at: new Date(at).toISOString() };
    failures.push(failure);
    emit({
      kind: 'failed',
      stream: options.name,
      stage: failure.stage,
      code: failure.code,
      message: failure.message,
      ...(failure.exitCode === undefined ? {} : { exitCode: failure.exitCode }),
      ...(failure.stderrTail === undefined ? {} : { stderrTail: failure.stderrTail }),
      firstFailureAt: failure.at,
    });
    if (options.signal?.aborted) break;
    // The tar guard refused what the producer wrote: the same producer writes it again.
    if (NOT_RETRIED.has(failure.code)) break;
  }
  const last = failures.at(-1);
  return {
    stream: options.name,
    transport: transport.name,
    ok: false,
    bytes: lastBytes,
    elapsedMs: Date.now() - started,
    rate: 0,
    retries: failures.length - 1,
    failures,
    ...(last === undefined ? {} : { failure: last }),
  };
}

interface AttemptOptions extends RunStreamOptions {
  readonly transport: Transport;
  readonly stallSeconds: number;
  readonly readySeconds: number;
  readonly runId: string;
  readonly deployCommand: readonly string[];
  readonly preflight: PreflightContext;
  readonly attempt: number;
  readonly emit: (event: StreamEvent) => void;
}

/** Runs one attempt; always cleans up after itself. */
async function runAttempt(options: AttemptOptions): Promise<AttemptOutcome> {
  // Named with the run id and our pid (`dk-<run>-stream<pid>-<name>-*`): if this process is killed,
  // a later send of the run or `deploy stream cleanup --run-id` finds it (packages/deploy recoverStreamSends).
  const attemptDir = await mkdtemp(join(tmpdir(), `${streamTempPrefix(options.runId)}-${options.name}-`));
  const failures: StageFailure[] = [];
  let onFailure: () => void = () => undefined;
  const failed = new Promise<void>((resolve) => (onFailure = resolve));
  let onCause: () => void = () => undefined;
  const causeReported = new Promise<void>((resolve) => (onCause = resolve));
  const report = (failure: StageFailure): void => {
    failures.push(failure);
    onFailure();
    if (failure.consequential !== true) onCause();
  };
  const secrets: Secret[] = [...(options.secrets ?? [])];
  let path: StreamPath | undefined;
  const emit = (event: StreamEvent): void => {
    if (event.kind === 'path') path = event.path;
    options.emit(event);
  };
  const abortListener = (): void =>
    report({ stage: 'sender', code: 'STREAM_ABORTED', message: 'the stream was aborted', at: Date.now() });
  options.signal?.addEventListener('abort', abortListener);
  let session: SenderSession | undefined;
  let producer: ReturnType<Host['spawn']> | undefined;
  /** Resolves once the producer's exit is judged (and reported when it failed). */
  let producerSettled: Promise<void> | undefined;
  const producerMeter = new ByteMeter();
  let watchdog: NodeJS.Timeout | undefined;
  const started = Date.now();
  try {
    try {
      session = await openSession(options, {
        ...options.preflight,
        runId: options.runId,
        attempt: options.attempt,
        attemptDir,
        secrets,
        emit,
        report,
      });
    } catch (error) {
      report(toStageFailure(error, 'sender'));
      throw error;
    }
    // The readiness window runs from the attempt's start to the first payload byte at the receiver.
    const readyMs = options.readySeconds * 1000;
    const reportNotReady = (): void =>
      report({
        stage: 'receiver',
        code: 'RECEIVER_NOT_READY',
        message: `no payload byte reached the receiver on ${options.target.name} within ${options.readySeconds} s (the readiness window: the target command starting, the transport's link hand-over and connection setup)`,
        at: Date.now(),
        hint: `Check the target host (load, deploy installed) and its connectivity; raise --ready-seconds if the connection is just slow to set up (ffl: WebRTC takes 10-20 s, a relay fallback over 60 s).`,
      });
    let readyTimer: NodeJS.Timeout | undefined;
    const readyTimeout = new Promise<'timeout'>(
      (resolve) => (readyTimer = setTimeout(() => resolve('timeout'), readyMs)),
    );
    const readyOutcome = await Promise.race([
      session.ready.then(
        () => 'ready' as const,
        () => 'failed' as const,
      ),
      failed.then(() => 'failed' as const),
      readyTimeout,
    ]);
    clearTimeout(readyTimer);
    if (readyOutcome === 'timeout') reportNotReady();
    if (readyOutcome !== 'ready') throw new Error('not ready');

    const encoder = new FrameEncoder();
    // A transport that stages a file (scp) takes a local producer's stdout as that file: no byte
    // passes through us on this side, the transport hashes the file and writes its trailer.
    const direct =
      options.producerStream === undefined && options.source.kind === 'local' ? session.producerFile : undefined;
    direct?.start();
    producer =
      options.producerStream !== undefined
        ? wrapStreamProducer(options.producerStream)
        : options.source.spawn({
            argv: options.producer,
            ...(options.producerEnv === undefined ? {} : { env: options.producerEnv }),
            ...(options.producerCwd === undefined ? {} : { cwd: options.producerCwd }),
            ...(direct === undefined ? {} : { stdoutFd: direct.fd }),
            label: `producer ${options.name}`,
            maxBuffer: 64 * 1024,
          });
    let directTrailer: StreamTrailer | undefined;
    const sink = session.sink;
    sink.on('error', (error: NodeJS.ErrnoException) =>
      report({
        stage: 'sender',
        code: 'SENDER_WRITE_FAILED',
        message: `writing to the transport failed: ${error.message}`,
        at: Date.now(),
        consequential: error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED',
      }),
    );
    // The encoder is ended by finish() only: the trailer must follow every byte the producer wrote,
    // and the producer's exit and its stdout's end arrive in either order.
    const producerEnded =
      direct === undefined ? new Promise<void>((resolve) => producerMeter.once('end', resolve)) : Promise.resolve();
    if (direct === undefined) {
      producer.stdout.pipe(producerMeter);
      producerMeter.pipe(encoder, { end: false });
      encoder.pipe(sink);
    } else {
      producer.stdout.resume();
      producerMeter.follow(
        () => direct.bytes,
        () => direct.lastMoveAt,
      );
    }
    const producerStderr: string[] = [];
    producer.stderr.on('data', (chunk: Buffer) => {
      producerStderr.push(chunk.toString('utf8'));
      if (producerStderr.length > 64) producerStderr.splice(0, producerStderr.length - 64);
    });
    let producerDone = false;
    producerSettled = producer.wait().then(async (result) => {
      // stdout may still hold bytes after exit: the trailer must come after all of them.
      await producerEnded;
      producerDone = true;
      const status = { exitCode: result.exitCode, signal: result.signal };
      if (direct === undefined) {
        encoder.finish(status);
      } else {
        try {
          directTrailer = await direct.finish(status);
        } catch (error) {
          report({
            stage: 'sender',
            code: 'SCP_STAGING_WRITE',
            message: `cannot complete the staged file: ${(error as Error).message}`,
            at: Date.now(),
          });
        }
      }
      if (result.exitCode !== 0 || result.signal !== null) {
        report({
          stage: 'producer',
          code: 'PRODUCER_FAILED',
          message: `the producer \`${String(options.producer[0])}\` on ${options.source.name} ended with ${describeExit(result)} after ${producerMeter.bytes} bytes`,
          exitCode: result.exitCode,
          signal: result.signal,
          stderrTail: tailText(producerStderr.join('') || result.stderr, secrets),
          at: Date.now(),
          consequential: isBrokenPipeExit(result.exitCode, result.signal),
          hint: 'See the producer stderr tail; its output was incomplete, so nothing was swapped in on the target.',
        });
      }
    });

    // Watchdog: progress at most 1/s; before the first payload byte reached the receiver, the
    // readiness window (and a producer that writes nothing for the stall window); after it, a stall
    // when no byte moved on either side for the stall window.
    let lastConsumer = 0;
    const watchStarted = Date.now();
    let lastConsumerMoveAt = watchStarted;
    let firstByteAt: number | undefined;
    let lastProgressAt = 0;
    const windowMs = options.stallSeconds * 1000;
    watchdog = setInterval(() => {
      const now = Date.now();
      const consumer = session!.consumerBytes();
      if (consumer !== lastConsumer) {
        lastConsumer = consumer;
        lastConsumerMoveAt = now;
        firstByteAt ??= now;
      }
      if (now - lastProgressAt >= PROGRESS_INTERVAL_MS) {
        lastProgressAt = now;
        const elapsedMs = now - started;
        const rate = elapsedMs > 0 ? Math.round((producerMeter.bytes * 1000) / elapsedMs) : 0;
        const etaMs =
          options.estimatedBytes !== undefined && rate > 0
            ? Math.max(0, Math.round(((options.estimatedBytes - producerMeter.bytes) * 1000) / rate))
            : undefined;
        emit({
          kind: 'progress',
          stream: options.name,
          side: 'producer',
          bytes: producerMeter.bytes,
          rate,
          elapsedMs,
          ...(etaMs === undefined ? {} : { etaMs }),
        });
      }
      // Once the receiver has the whole stream, no byte is left to move: its consumer and transport
      // finishing (ffl's checksum check and ACK, pg_restore's indexes) is bounded on the target.
      if (failures.length > 0 || session!.received()) return;
      if (firstByteAt === undefined) {
        const blockedEarly = encoder.writableNeedDrain || sink.writableNeedDrain || producerMeter.writableNeedDrain;
        // The producer started only now (after the target got ready): its idle time counts from here.
        const producerIdleMs = now - Math.max(producerMeter.lastMoveAt, watchStarted);
        if (now - started >= readyMs) reportNotReady();
        else if (producerMeter.bytes === 0 && !producerDone && !blockedEarly && producerIdleMs >= windowMs) {
          emit({ kind: 'stalled', stream: options.name, idleMs: producerIdleMs, windowMs });
          report({
            stage: 'producer',
            code: 'STREAM_STALLED',
            message: `no byte moved for ${Math.round(producerIdleMs / 1000)} s (window ${options.stallSeconds} s): the producer stopped writing; producer ${producerMeter.bytes} bytes, consumer 0 bytes`,
            at: now,
            hint: `Look at the producer on ${options.source.name}; raise --stall-seconds if it is just slow.`,
          });
        }
        return;
      }
      const idleMs = now - Math.max(producerMeter.lastMoveAt, lastConsumerMoveAt, firstByteAt);
      if (idleMs >= windowMs) {
        emit({ kind: 'stalled', stream: options.name, idleMs, windowMs });
        const blocked = encoder.writableNeedDrain || sink.writableNeedDrain || producerMeter.writableNeedDrain;
        const stage = producerDone ? 'receiver' : blocked ? 'consumer' : 'producer';
        const why =
          stage === 'consumer'
            ? 'the consumer side stopped taking bytes (the producer is blocked writing)'
            : stage === 'producer'
              ? 'the producer stopped writing'
              : 'the receiver did not finish after the producer ended';
        report({
          stage,
          code: 'STREAM_STALLED',
          message: `no byte moved for ${Math.round(idleMs / 1000)} s (window ${options.stallSeconds} s): ${why}; producer ${producerMeter.bytes} bytes, consumer ${consumer} bytes`,
          at: now,
          hint: `Look at the ${stage} on ${stage === 'producer' ? options.source.name : options.target.name}; raise --stall-seconds if it is just slow.`,
        });
      }
    }, TICK_MS);

    const finished = session.finished.then(
      (done) => ({ done }),
      () => undefined,
    );
    const first = await Promise.race([finished, failed.then(() => undefined)]);
    if (first !== undefined && failures.length === 0) {
      const producerResult = await producer.wait();
      const sentTrailer = direct === undefined ? encoder.trailer : directTrailer;
      if (producerResult.exitCode === 0 && producerResult.signal === null && sentTrailer !== undefined) {
        if (sentTrailer.sha256 !== first.done.sha256 || sentTrailer.bytes !== first.done.bytes) {
          report({
            stage: 'integrity',
            code: 'FRAME_MISMATCH',
            message: `the receiver reports ${first.done.bytes} bytes sha256 ${first.done.sha256}, the sender framed ${sentTrailer.bytes} bytes sha256 ${sentTrailer.sha256}`,
            at: Date.now(),
          });
        } else {
          return {
            ok: true,
            done: first.done,
            producerBytes: producerMeter.bytes,
            elapsedMs: Date.now() - started,
            ...(path === undefined ? {} : { path }),
          };
        }
      }
    }
    throw new Error('attempt failed');
  } catch {
    // Let the other stages report what they saw before blaming one.
    // Our own report of a failed producer (it has its stderr) lands before the blame is chosen.
    await waitAtMost(Promise.all([session?.finished, producerSettled ?? producer?.wait()]), SETTLE_MS);
    // Only consequences so far (a broken pipe to a transport that died): its own report names the
    // cause, but on a loaded machine it may come later than the settle time.
    if (failures.length > 0 && failures.every((failure) => failure.consequential === true))
      await waitAtMost(causeReported, CAUSE_WAIT_MS);
    const picked = pickFirstFailure(failures);
    // The receiver learns of a failed producer from the trailer and may report it before our wait
    // for the producer's exit does (seen in CI): the same failure, but ours carries the producer's
    // stderr, so ours names it.
    const ownProducerReport =
      picked?.stage === 'producer'
        ? failures.find((entry) => entry.stage === 'producer' && entry.stderrTail !== undefined)
        : undefined;
    const failure = ownProducerReport ??
      picked ?? {
        stage: 'sender' as const,
        code: 'STREAM_FAILED',
        message: 'the stream failed',
        at: Date.now(),
      };
    return { ok: false, failure, producerBytes: producerMeter.bytes };
  } finally {
    clearInterval(watchdog);
    options.signal?.removeEventListener('abort', abortListener);
    if (failures.length > 0) {
      producer?.kill('SIGTERM');
      await session?.abort();
      producer?.kill('SIGKILL');
      if (options.consumer.kind === 'into') {
        await options.target
          .run({
            argv: buildCleanupArgv(options.deployCommand, options.consumer.dir, options.runId),
            timeoutMs: 60_000,
          })
          .catch(() => undefined);
      }
    }
    await rm(attemptDir, { recursive: true, force: true });
  }
}

/**
 * The start of the name of every temp dir a stream sender of `runId` in this process makes:
 * `dk-<run id>-stream<pid>`. The run id finds it, the pid tells whether its owner still runs.
 */
export function streamTempPrefix(runId: string, pid: number = process.pid): string {
  return `dk-${runId}-stream${pid}`;
}

/** Presents a readable stream as a producer process: exit 0 at its end, 1 on an error. */
function wrapStreamProducer(stream: Readable): ReturnType<Host['spawn']> {
  const started = Date.now();
  const stderr = new PassThrough();
  const stdout = new PassThrough();
  const done = new Promise<RunResult>((resolve) => {
    const finish = (exitCode: number, message: string): void => {
      stderr.end();
      resolve({
        argv: ['<stdin>'],
        exitCode,
        signal: null,
        stdout: '',
        stderr: message,
        durationMs: Date.now() - started,
        timedOut: false,
      });
    };
    stream.once('end', () => finish(0, ''));
    stream.once('error', (error) => {
      stdout.end();
      finish(1, `reading the payload failed: ${error.message}`);
    });
  });
  stream.pipe(stdout);
  return { pid: undefined, stdin: null, stdout, stderr, wait: () => done, kill: () => stream.destroy() };
}

/** Turns anything thrown by a transport into a StageFailure. */
function toStageFailure(error: unknown, stage: StageFailure['stage']): StageFailure {
  if (error instanceof StageFailureError) return error.failure;
  const message = error instanceof Error ? error.message : String(error);
  const code =
    typeof (error as { code?: unknown }).code === 'string'
      ? String((error as { code: string }).code)
      : 'TRANSPORT_START_FAILED';
  const hint = (error as { hint?: unknown }).hint;
  return { stage, code, message, at: Date.now(), ...(typeof hint === 'string' ? { hint } : {}) };
}
