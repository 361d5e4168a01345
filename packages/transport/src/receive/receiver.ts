import { open, rm, statfs, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  DeployError,
  formatBytes,
  displayArgv,
  redact,
  TransportError,
  type Arg,
  type Host,
  type HostProcess,
  type RunResult,
  type Secret,
} from '@deploykit/core';
import { LocalHost, tailLines } from '@deploykit/host';
import { DEFAULT_READY_SECONDS, type ConsumerSpec, type StreamEvent, type StreamStage } from '../contract.js';
import type { InputFailure, ReceiverInput } from '../transports/transport.js';
import { describeProducerStatus, FrameDecoder } from '../framing/frame-decoder.js';
import type { StreamTrailer } from '../contract.js';
import { guardFileHeaders, hashFileRange, parseStagedHeader, SCP_HEADER_BYTES } from '../transports/scp-file.js';
import { TarGuard } from './tar-guard.js';
import { createStaging, swapIntoPlace } from './staging.js';

/** What runReceiver needs; it runs on the target host. */
export interface ReceiverOptions {
  stream: string;
  runId: string;
  consumer: ConsumerSpec;
  /** The incoming bytes, opened by the transport's target half (see resolveReceiverTransport). */
  input: ReceiverInput;
  /** After the first input byte: no byte moved for this long -> `stalled`, then abort. */
  stallSeconds: number;
  /**
   * Readiness window: no input byte within this long of the start fails the receive (the
   * transport's connection setup: ffl's WebRTC takes 10-20 s). Default DEFAULT_READY_SECONDS.
   */
  readySeconds?: number;
  emit: (event: StreamEvent) => void;
  /** Abort -> kill the consumer's process group, close the input, remove staging. */
  signal?: AbortSignal;
  /** Runs the consumer; default a LocalHost. */
  host?: Host;
  /** For `into`: also carry extended attributes and ACLs (`tar --xattrs --acls`). */
  preserveXattrs?: boolean;
}

/** How a receive ended. */
export type ReceiveResult =
  | { ok: true; bytes: number; sha256: string; elapsedMs: number }
  | { ok: false; stage: StreamStage; code: string; message: string; exitCode?: number | null; stderrTail?: string };

type Failure = Extract<ReceiveResult, { ok: false }> & { at: string };

/** How long to let the transport (ffl) finish on its own after the trailer arrived. */
const INPUT_COMPLETE_GRACE_MS = 5000;
/** How long to wait for the transport's verdict before blaming a broken frame on the stream itself. */
const INPUT_VERDICT_GRACE_MS = 3000;
/** Below this much free space a short write by tar is taken for a full disk. */
const MIN_FREE_BYTES = 1024 * 1024;

/** Builds the tar argv that extracts a stream into a staging dir, keeping numeric owners and modes. */
export function buildExtractArgv(staging: string, preserveXattrs = false): string[] {
  return [
    'tar',
    '-x',
    '--numeric-owner',
    '-p',
    ...(preserveXattrs ? ['--xattrs', '--acls'] : []),
    '-C',
    staging,
    '-f',
    '-',
  ];
}

/**
 * Receives one framed stream on the target host: source -> FrameDecoder -> (TarGuard) -> consumer,
 * with backpressure, progress, a stall watchdog and failure attribution to the first failing
 * stage. For `into`, extracts into a fresh staging dir swapped into place only after the trailer
 * verified and tar exited 0. Emits `ready`, `connected`, `path`, `progress`, `stalled` and exactly
 * one of `done` / `failed`. Never throws for stream failures; returns a ReceiveResult. Leaves no
 * process, staging dir or temp dir behind.
 */
export async function runReceiver(options: ReceiverOptions): Promise<ReceiveResult> {
  const receiver = new Receiver(options);
  return receiver.run();
}

class Receiver {
  readonly #options: ReceiverOptions;
  readonly #host: Host;
  readonly #secrets: Secret[];
  readonly #started = Date.now();
  readonly #decoder = new FrameDecoder();
  readonly #guard: TarGuard | undefined;
  #failure: Failure | undefined;
  #failed!: () => void;
  readonly #failedPromise: Promise<void>;
  #consumer: HostProcess | undefined;
  #consumerArgv: readonly Arg[] = [];
  #consumerResult: Promise<RunResult> | undefined;
  #killedByUs = false;
  #sourceStream: Readable | undefined;
  #staging: string | undefined;
  #inputBytes = 0;
  #consumerBytes = 0;
  /** Undefined until the first input byte: the readiness window applies until then, the stall window after. */
  #lastByteAt: number | undefined;
  #connected = false;
  /** A staged stream file read in place (scp): its handle, and its trailer once the hash matched. */
  #file: FileHandle | undefined;
  #fileVerified: StreamTrailer | undefined;
  #onFileVerified: () => void = () => undefined;

  constructor(options: ReceiverOptions) {
    this.#options = options;
    this.#host = options.host ?? new LocalHost();
    this.#secrets = [...options.input.secrets];
    this.#guard = options.consumer.kind === 'into' ? new TarGuard() : undefined;
    this.#failedPromise = new Promise((resolve) => {
      this.#failed = resolve;
    });
  }

  async run(): Promise<ReceiveResult> {
    const { signal } = this.#options;
    const onAbort = (): void => this.#fail('receiver', 'ABORTED', 'receive was aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    let watchdog: NodeJS.Timeout | undefined;
    try {
      if (signal?.aborted) onAbort();
      else await this.#start();
      if (!this.#failure) {
        watchdog = this.#startWatchdog();
        const succeeded = await Promise.race([this.#awaitSuccess(), this.#failedPromise.then(() => false)]);
        clearInterval(watchdog);
        if (succeeded && !this.#failure) return await this.#finishSuccess();
      }
    } catch (error) {
      const deployError = error instanceof DeployError ? error : undefined;
      this.#fail('receiver', deployError?.code ?? 'RECEIVER_FAILED', redact((error as Error).message, this.#secrets));
    } finally {
      clearInterval(watchdog);
      signal?.removeEventListener('abort', onAbort);
    }
    return this.#finishFailure();
  }

  /** Creates staging, starts the consumer and the source, wires them together. */
  async #start(): Promise<void> {
    const { consumer, runId } = this.#options;
    if (consumer.kind === 'into') {
      this.#staging = await createStaging(consumer.dir, runId);
      this.#consumerArgv = buildExtractArgv(this.#staging, this.#options.preserveXattrs);
    } else {
      this.#consumerArgv = consumer.argv;
    }
    if (this.#failure) return;
    if (this.#options.input.stagedFile !== undefined) return this.#startStagedFile(this.#options.input.stagedFile);
    const consumerProcess = this.#host.spawn({
      argv: this.#consumerArgv,
      stdin: 'pipe',
      label: `${this.#options.stream} consumer`,
    });
    this.#consumer = consumerProcess;
    // Its stdout is not ours to print (our stdout may carry JSONL events); drain it so it never blocks.
    consumerProcess.stdout.resume();
    this.#consumerResult = consumerProcess.wait();
    void this.#consumerResult.then((result) => this.#onConsumerExit(result));
    const stdin = consumerProcess.stdin as Writable;

    const { input } = this.#options;
    const source = input.stream;
    input.onEnded((failure) => this.#onInputEnded(failure));
    this.#sourceStream = source;
    this.#options.emit({ kind: 'ready', stream: this.#options.stream });
    // ffl's receiver reports no path; the sending side knows whether it went direct or via relay.
    if (input.path) this.#options.emit({ kind: 'path', stream: this.#options.stream, path: input.path });

    source.on('data', (chunk: Buffer) => this.#onSourceData(chunk));
    source.on('error', (error) =>
      this.#fail('receiver', 'SOURCE_FAILED', `reading the stream failed: ${error.message}`),
    );
    this.#decoder.on('error', (error) => void this.#onIntegrityError(error));
    source.pipe(this.#decoder);
    let last: Readable = this.#decoder;
    if (this.#guard) {
      this.#guard.on('error', (error) =>
        this.#fail('integrity', (error as DeployError).code ?? 'TAR_GARBAGE', error.message),
      );
      last = this.#decoder.pipe(this.#guard);
    }
    last.on('data', (chunk: Buffer) => {
      this.#consumerBytes += chunk.length;
      this.#lastByteAt = Date.now();
    });
    stdin.on('error', () => {
      // EPIPE: the consumer closed its stdin. Its exit status decides; keep decoding so the
      // trailer is still verified.
      last.unpipe(stdin);
      last.resume();
    });
    last.pipe(stdin);
  }

  /**
   * A complete staged file on this host (scp): its header and length are checked first, the tar
   * guard walks its headers (seeking over entry data), then the consumer reads the payload from the
   * file itself while we hash it from the page cache. A hash mismatch stops the consumer and fails
   * the receive (staging is thrown away); success needs both the hash and the consumer's exit 0.
   */
  async #startStagedFile(path: string): Promise<void> {
    const { emit, stream } = this.#options;
    const file = await open(path, 'r');
    this.#file = file;
    const size = (await file.stat()).size;
    const header = Buffer.alloc(SCP_HEADER_BYTES);
    const { bytesRead } = await file.read(header, 0, SCP_HEADER_BYTES, 0);
    emit({ kind: 'ready', stream });
    emit({ kind: 'path', stream, path: 'file' });
    let trailer: StreamTrailer;
    try {
      trailer = parseStagedHeader(header.subarray(0, bytesRead), size);
    } catch (error) {
      this.#fail('integrity', (error as TransportError).code ?? 'FRAME_GARBAGE', (error as Error).message);
      return;
    }
    if (trailer.producerExit !== 0 || trailer.producerSignal !== null) {
      this.#fail('producer', 'PRODUCER_FAILED', `${describeProducerStatus(trailer)} after ${trailer.bytes} bytes`, {
        exitCode: trailer.producerExit,
      });
      return;
    }
    this.#connected = true;
    this.#lastByteAt = Date.now();
    emit({ kind: 'connected', stream });
    const hashed = hashFileRange(
      file,
      SCP_HEADER_BYTES,
      trailer.bytes,
      (bytes) => {
        this.#inputBytes += bytes;
        this.#consumerBytes += bytes;
        this.#lastByteAt = Date.now();
      },
      () => this.#failure !== undefined,
    ).then(
      (sha256) => sha256 === trailer.sha256,
      () => false,
    );
    const mismatch = (): void =>
      this.#fail(
        'integrity',
        'FRAME_MISMATCH',
        `the staged file differs from what was sent: its ${trailer.bytes} payload bytes do not hash to the sender's sha256 ${trailer.sha256}`,
      );
    if (this.#guard) {
      try {
        await guardFileHeaders(this.#guard, file, SCP_HEADER_BYTES, trailer.bytes);
      } catch (error) {
        // A header broken in transit is the copy's fault, not the producer's.
        if (!(await hashed)) return mismatch();
        this.#fail('integrity', (error as DeployError).code ?? 'TAR_GARBAGE', (error as Error).message);
        return;
      }
    }
    if (this.#failure) return;
    // The consumer's own fd on the file, positioned at the payload: it reads to the end of the file.
    const input = await open(path, 'r');
    let consumerProcess: HostProcess;
    try {
      await input.read(Buffer.alloc(SCP_HEADER_BYTES), 0, SCP_HEADER_BYTES, null);
      consumerProcess = this.#host.spawn({
        argv: this.#consumerArgv,
        stdinFd: input.fd,
        label: `${this.#options.stream} consumer`,
      });
    } finally {
      await input.close();
    }
    this.#consumer = consumerProcess;
    consumerProcess.stdout.resume();
    this.#consumerResult = consumerProcess.wait();
    void hashed.then((same) => {
      if (!same) return mismatch();
      this.#fileVerified = trailer;
      this.#onFileVerified();
    });
    void this.#consumerResult.then(async (result) => {
      // A consumer that failed on a broken file: the broken file is the cause.
      if (result.exitCode !== 0 && !(await hashed)) return;
      await this.#onConsumerExit(result);
    });
  }

  #onSourceData(chunk: Buffer): void {
    this.#inputBytes += chunk.length;
    this.#lastByteAt = Date.now();
    if (!this.#connected) {
      this.#connected = true;
      this.#options.emit({ kind: 'connected', stream: this.#options.stream });
    }
  }

  /** A frame error: the producer's own status, a broken transport (ffl failed), or the stream itself. */
  async #onIntegrityError(error: Error): Promise<void> {
    const code = error instanceof TransportError ? error.code : 'FRAME_GARBAGE';
    if (code === 'PRODUCER_FAILED') {
      const trailer = this.#decoder.trailer;
      this.#fail('producer', code, error.message, { exitCode: trailer?.producerExit ?? null });
      return;
    }
    // The consumer must not go on with a broken stream while we wait for the transport's verdict;
    // the transport must not block on a full pipe either (ffl writes its failure text there).
    this.#stopConsumer();
    setImmediate(() => this.#sourceStream?.resume());
    const failure = await this.#options.input.transportFailure(INPUT_VERDICT_GRACE_MS);
    if (failure !== undefined) return this.#failInput(failure);
    this.#fail('integrity', code, error.message);
  }

  /** The input ended on its own (ffl exited): a failure is the transport's; a clean end before the trailer is truncation. */
  #onInputEnded(failure: InputFailure | undefined): void {
    if (this.#failure || this.#decoder.complete) return;
    // Its stream closes with it; give the decoder a moment to see EOF and judge the frame.
    setTimeout(() => {
      if (this.#failure || this.#decoder.complete) return;
      if (failure !== undefined) this.#failInput(failure);
      else this.#fail('integrity', 'FRAME_TRUNCATED', 'the transport ended before the stream trailer arrived');
    }, INPUT_VERDICT_GRACE_MS).unref();
  }

  #failInput(failure: InputFailure): void {
    this.#fail(failure.stage ?? 'receiver', failure.code, failure.message, {
      ...(failure.exitCode === undefined ? {} : { exitCode: failure.exitCode }),
      ...(failure.stderrTail === undefined ? {} : { stderrTail: this.#tail(failure.stderrTail) }),
    });
  }

  async #onConsumerExit(result: RunResult): Promise<void> {
    if (this.#failure || this.#killedByUs) return;
    if (result.exitCode === 0) return;
    const name = displayArgv(this.#consumerArgv.slice(0, 1));
    const stderrTail = this.#tail(result.stderr);
    const status = result.signal ? `was killed by ${result.signal}` : `exited with code ${String(result.exitCode)}`;
    const space = await this.#describeNoSpace(result.stderr);
    if (this.#failure) return;
    if (space !== undefined) {
      this.#fail('consumer', 'CONSUMER_NO_SPACE', `consumer ${name} ${status}: No space left on device${space}`, {
        exitCode: result.exitCode,
        stderrTail,
      });
      return;
    }
    const lastLine = tailLines(stderrTail, 1);
    this.#fail('consumer', 'CONSUMER_FAILED', `consumer ${name} ${status}${lastLine ? `: ${lastLine}` : ''}`, {
      exitCode: result.exitCode,
      stderrTail,
    });
  }

  /**
   * Returns a free-space note when the consumer ran out of space, else undefined. GNU tar reports a
   * full disk as a short write (`Wrote only 5120 of 10240 bytes`) without naming ENOSPC, so for
   * `into` a short write with under MIN_FREE_BYTES left beside the target counts as well.
   */
  async #describeNoSpace(stderr: string): Promise<string | undefined> {
    const { consumer } = this.#options;
    const where = consumer.kind === 'into' ? dirname(resolve(consumer.dir)) : undefined;
    const free =
      where === undefined
        ? undefined
        : await statfs(where).then(
            (s) => s.bavail * s.bsize,
            () => undefined,
          );
    const note = free === undefined ? '' : ` (${formatBytes(free)} free in ${where})`;
    if (/No space left on device/i.test(stderr)) return note;
    if (free !== undefined && free < MIN_FREE_BYTES && /Wrote only \d+ of \d+ bytes/.test(stderr)) return note;
    return undefined;
  }

  #tail(text: string): string {
    return tailLines(redact(text, this.#secrets), 20);
  }

  /** Resolves true once the trailer verified, the consumer exited 0 and the tar guard is satisfied. */
  async #awaitSuccess(): Promise<boolean> {
    if (this.#file !== undefined) {
      await new Promise<void>((resolve) => {
        if (this.#fileVerified !== undefined) resolve();
        else this.#onFileVerified = resolve;
      });
      this.#options.emit({ kind: 'received', stream: this.#options.stream, bytes: this.#fileVerified!.bytes });
      const result = await this.#consumerResult!;
      if (result.exitCode === 0 && !this.#failure) return true;
      await this.#failedPromise;
      return false;
    }
    await new Promise<void>((resolve) => {
      if (this.#decoder.complete) resolve();
      else this.#decoder.once('trailer', () => resolve());
    });
    // The sender's stall window ends here: no byte is left to move, only the consumer and the
    // transport finishing (pg_restore's indexes, ffl's checksum check and ACK).
    this.#options.emit({ kind: 'received', stream: this.#options.stream, bytes: this.#decoder.trailer!.bytes });
    // The guard may still be checking headers the consumer never needed (it exited 0 early).
    if (this.#guard)
      await Promise.race([finished(this.#guard).catch(() => undefined), this.#consumerResult!.then(() => undefined)]);
    const result = await this.#consumerResult!;
    if (result.exitCode === 0 && !this.#failure) return true;
    // The consumer's failure (or whatever stopped it) is recorded asynchronously; wait for it.
    await this.#failedPromise;
    return false;
  }

  #startWatchdog(): NodeJS.Timeout {
    const windowMs = this.#options.stallSeconds * 1000;
    const readySeconds = this.#options.readySeconds ?? DEFAULT_READY_SECONDS;
    let reported = { at: Date.now(), bytes: 0 };
    return setInterval(
      () => {
        const now = Date.now();
        if (this.#consumerBytes !== reported.bytes) {
          const rate = ((this.#consumerBytes - reported.bytes) * 1000) / Math.max(1, now - reported.at);
          this.#options.emit({
            kind: 'progress',
            stream: this.#options.stream,
            side: 'consumer',
            bytes: this.#consumerBytes,
            rate,
            elapsedMs: now - this.#started,
          });
          reported = { at: now, bytes: this.#consumerBytes };
        }
        // Once the consumer has every byte, waiting for it to finish (pg_restore building indexes) is no stall.
        if (this.#consumer?.stdin?.writableFinished || this.#fileVerified !== undefined) return;
        if (this.#lastByteAt === undefined) {
          if (now - this.#started < readySeconds * 1000) return;
          this.#fail(
            'receiver',
            'RECEIVER_NOT_READY',
            `no byte arrived within ${readySeconds} s of the start (the readiness window: the transport's link hand-over and connection setup); raise --ready-seconds if the connection is just slow to set up`,
          );
          return;
        }
        const idleMs = now - this.#lastByteAt;
        if (idleMs < windowMs) return;
        this.#options.emit({ kind: 'stalled', stream: this.#options.stream, idleMs, windowMs });
        const stdin = this.#consumer?.stdin;
        const waiting =
          (stdin?.writableLength ?? 0) + this.#decoder.readableLength + (this.#guard?.readableLength ?? 0);
        const seconds = Math.round(idleMs / 1000);
        if (waiting > 0 && !this.#decoder.complete) {
          this.#fail(
            'consumer',
            'STALLED',
            `the consumer took no bytes for ${seconds} s (${waiting} bytes waiting for it)`,
          );
        } else if (this.#decoder.complete) {
          this.#fail(
            'consumer',
            'STALLED',
            `the consumer did not finish reading for ${seconds} s after the stream ended`,
          );
        } else {
          this.#fail(
            'sender',
            'STALLED',
            `no byte arrived from the sender for ${seconds} s (${this.#inputBytes} bytes so far)`,
          );
        }
      },
      Math.min(1000, windowMs / 4, (readySeconds * 1000) / 4),
    );
  }

  /** Records the first failure only and stops everything. */
  #fail(
    stage: StreamStage,
    code: string,
    message: string,
    extra: { exitCode?: number | null; stderrTail?: string } = {},
  ): void {
    if (this.#failure) return;
    this.#failure = {
      ok: false,
      stage,
      code,
      message: redact(message, this.#secrets),
      ...extra,
      at: new Date().toISOString(),
    };
    this.#stopConsumer();
    this.#sourceStream?.unpipe();
    void this.#options.input.close();
    this.#failed();
  }

  #stopConsumer(): void {
    const consumerProcess = this.#consumer;
    if (!consumerProcess || this.#killedByUs) return;
    this.#killedByUs = true;
    consumerProcess.stdin?.destroy();
    consumerProcess.kill('SIGTERM');
    // A stopped process only acts on SIGTERM once continued.
    consumerProcess.kill('SIGCONT');
  }

  async #finishSuccess(): Promise<ReceiveResult> {
    const trailer = this.#fileVerified ?? this.#decoder.trailer!;
    await this.#options.input.complete(INPUT_COMPLETE_GRACE_MS);
    try {
      const { consumer, runId } = this.#options;
      if (consumer.kind === 'into') {
        await swapIntoPlace(consumer.dir, this.#staging!, runId, { keepMode: this.#guard?.sawRootEntry ?? false });
        this.#staging = undefined;
      }
    } catch (error) {
      this.#fail('receiver', (error as DeployError).code ?? 'SWAP_FAILED', (error as Error).message);
      return this.#finishFailure();
    }
    await this.#cleanup();
    const elapsedMs = Date.now() - this.#started;
    this.#options.emit({
      kind: 'done',
      stream: this.#options.stream,
      bytes: trailer.bytes,
      sha256: trailer.sha256,
      elapsedMs,
    });
    return { ok: true, bytes: trailer.bytes, sha256: trailer.sha256, elapsedMs };
  }

  async #finishFailure(): Promise<ReceiveResult> {
    const failure = this.#failure ?? {
      ok: false,
      stage: 'receiver',
      code: 'INTERNAL',
      message: 'receiver ended without a result (a bug in deploykit)',
      at: new Date().toISOString(),
    };
    await this.#consumerResult;
    await this.#cleanup();
    const { at, ...result } = failure;
    this.#options.emit({
      kind: 'failed',
      stream: this.#options.stream,
      stage: result.stage,
      code: result.code,
      message: result.message,
      ...(result.exitCode !== undefined ? { exitCode: result.exitCode } : {}),
      ...(result.stderrTail !== undefined ? { stderrTail: result.stderrTail } : {}),
      firstFailureAt: at,
    });
    return result;
  }

  /** Removes staging (if not swapped in), temp dirs and a consumed stream file. */
  async #cleanup(): Promise<void> {
    if (this.#staging) await rm(this.#staging, { recursive: true, force: true });
    await this.#file?.close().catch(() => undefined);
    this.#file = undefined;
    await this.#options.input.close();
  }
}
