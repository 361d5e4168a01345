import { createHash, type Hash } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { finished, type Readable, type Writable } from 'node:stream';
import { DeployError } from '@deploykit/core';
import {
  BUNDLE_ERROR_CODES,
  BundleError,
  BUNDLE_VERSION,
  MAX_CHUNK_BYTES,
  RECORD_TYPES,
  encodeBundleJson,
  encodeBundlePreamble,
  encodeRecordHeader,
  encodeZeroRun,
  isBundleObject,
  streamHashCovers,
  isBundlePartId,
  bundleProducerSucceeded,
  type BundleAbort,
  type BundlePartTrailer,
  type BundleProducerStatus,
  type BundleRecordType,
  type BundleSkip,
  type BundleTrailer,
  type BundleTrailerPart,
  type BundleVersion,
} from './bundle-format.js';
import {
  detachSource,
  pumpEnabled,
  pumpPythonAvailable,
  pumpableSource,
  startPump,
  streamFd,
  type DetachedSource,
  type RunningPump,
} from './payload-pump.js';
import { ZeroRunSplitter, type PayloadSegment } from './zero-runs.js';

/** Longest stderr tail put into an E record; a tail is for a message, not a log. */
const MAX_STDERR_TAIL_CHARS = 16 * 1024;

type WriterPhase = 'new' | 'open' | 'finished' | 'aborted';

/** The part being written: its hash and size so far, and how an abort stops it. */
interface OpenPart {
  readonly part: string;
  readonly attempt: number;
  readonly hash: Hash;
  bytes: number;
  /** Bytes of this attempt's records in the bundle (B, D, Z, E headers and payloads). */
  wireBytes: number;
  /** Finds the zero runs sent as Z records; undefined when the writer sends every byte as D. */
  readonly zeroRuns: ZeroRunSplitter | undefined;
  /** Called by abort() or a sink failure: stops the source pump and the wait for the status. */
  readonly abandon: (error: Error) => void;
  /** Rejects with the reason once abandoned. */
  readonly abandoned: Promise<never>;
  /** The reason once abandoned; checked after every await, since a settled await may resume after an abort. */
  abandonedWith: Error | undefined;
  /** The payload pump moving this part's bytes, while it runs (then node writes nothing to the sink). */
  pump: RunningPump | undefined;
  /** The part hash the pump computed, once it finished. */
  pumpSha256: string | undefined;
}

/** The errno name of a number (32 -> EPIPE), for an error like the one a failed socket write gives. */
function errnoName(errno: number | null): string {
  const entry = Object.entries(osConstants.errno).find(([, value]) => value === errno);
  return entry?.[0] ?? 'EPIPE';
}

/** A writer used out of order is our bug, not bad input. */
function misuse(message: string): DeployError {
  return new DeployError('internal', 'BUNDLE_WRITER_MISUSE', `bundle writer: ${message}`, {
    hint: 'This is a bug in deploykit; run again with --verbose and report the output.',
  });
}

/** Options of a BundleWriter. */
export interface BundleWriterOptions {
  /**
   * The format major to write: 2 (default) writes 2.0, whose stream hash covers the control records
   * only; 1 writes 1.1 (1.0 without zero runs), every byte in the stream hash, for readers of 1.x.
   */
  readonly major?: 1 | 2;
  /** Whether runs of at least 64 KiB of zero bytes (whole 512-byte blocks) go as Z records (default true). */
  readonly zeroRuns?: boolean;
}

/**
 * Writes a migration bundle (docs/bundle.md) into `sink`, record by record, hashing every payload byte
 * once for its part and every control record once for the stream (2.0; 1.x: every byte). Respects the sink's backpressure (a full sink pauses
 * the part's source) and never ends the sink: the caller owns it. Methods throw a DeployError
 * (internal, BUNDLE_WRITER_MISUSE) when called out of order, and reject with the sink's error or a
 * BundleError (BUNDLE_SINK_CLOSED) when the sink fails. keepalive() and abort() may be called while
 * writePart() runs; every other method needs no part open.
 */
export class BundleWriter {
  readonly #sink: Writable;
  readonly #streamHash: Hash = createHash('sha256');
  #bytesWritten = 0;
  #phase: WriterPhase = 'new';
  #headerWritten = false;
  #contentsWritten = false;
  #partsStarted = false;
  #open: OpenPart | undefined;
  /** Final attempt of each part in order of first appearance; Map keeps the first insertion's position. */
  readonly #parts = new Map<string, BundleTrailerPart & { readonly attempt: number }>();
  #failure: Error | undefined;
  readonly #zeroRuns: boolean;
  readonly #version: BundleVersion;
  #lastPartWireBytes = 0;
  readonly #drainWaiters = new Set<{ resolve: () => void; reject: (error: Error) => void }>();
  /** Writes handed to the sink whose callback has not run yet: the pump starts only at 0. */
  #unflushed = 0;
  readonly #flushWaiters = new Set<{ resolve: () => void; reject: (error: Error) => void }>();
  readonly #onWritten = (): void => {
    this.#unflushed -= 1;
    if (this.#unflushed > 0) return;
    for (const waiter of this.#flushWaiters) waiter.resolve();
    this.#flushWaiters.clear();
  };
  #pumpUser = 0;
  #pumpSystem = 0;
  readonly #onDrain = (): void => {
    for (const waiter of this.#drainWaiters) waiter.resolve();
    this.#drainWaiters.clear();
  };
  // Listening for 'error' also keeps an unhandled sink error from crashing the process: it is
  // reported by the writer's next (or pending) call instead.
  readonly #onSinkError = (error: Error): void => this.#fail(error);
  readonly #onSinkClose = (): void => {
    if (this.#phase === 'finished' || this.#phase === 'aborted') return;
    // While the pump runs, its records count too (as far as its last progress line says).
    const bytesWritten = this.#bytesWritten + (this.#open?.pump?.wireBytes() ?? 0);
    this.#fail(
      new BundleError(
        BUNDLE_ERROR_CODES.sinkClosed,
        `the bundle's output closed after ${bytesWritten} bytes, before the bundle was finished`,
        {
          hint: 'The transport or the receiving side went away; see its own error, then re-run the migration: parts already verified are reused.',
          details: { bytesWritten },
        },
      ),
    );
  };

  /**
   * Writes into `sink`; never ends it. `zeroRuns` (default true) sends runs of at least 64 KiB of zero
   * bytes (whole 512-byte blocks) as Z records. `major: 1` writes bundle 1.1, or 1.0 with `zeroRuns:
   * false` (every byte in D records); the default is 2.0.
   */
  constructor(sink: Writable, options: BundleWriterOptions = {}) {
    this.#sink = sink;
    this.#zeroRuns = options.zeroRuns ?? true;
    // Asked now so that the first part rarely waits for the answer.
    if (pumpEnabled() && streamFd(sink) !== undefined) void pumpPythonAvailable();
    const major = options.major ?? BUNDLE_VERSION.major;
    if (major !== 1 && major !== 2) throw misuse(`bundle format ${String(major)} cannot be written (1 or 2)`);
    this.#version = major === 1 ? { major: 1, minor: this.#zeroRuns ? 1 : 0 } : BUNDLE_VERSION;
    sink.on('drain', this.#onDrain);
    sink.on('error', this.#onSinkError);
    sink.on('close', this.#onSinkClose);
  }

  /** The format version this writer writes. */
  get version(): BundleVersion {
    return this.#version;
  }

  /** Bytes handed to the sink so far (the T record included once written). */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Bytes of the part being written so far (for progress meters), 0 between parts. The pump reports every ~250 ms. */
  get partBytes(): number {
    const open = this.#open;
    if (open?.pump) return open.pump.bytes();
    return open?.bytes ?? 0;
  }

  /** Whether the sink is not taking bytes right now (node's buffer is full, or the pump waits on it): a stalled transfer. */
  get sinkBlocked(): boolean {
    return this.#sink.writableNeedDrain || (this.#open?.pump?.blocked() ?? false);
  }

  /** The process id of the payload pump running for the open part, if one runs. */
  get pumpPid(): number | undefined {
    return this.#open?.pump?.pid;
  }

  /** CPU seconds the payload pumps of this writer used so far (they run as child processes). */
  get pumpCpu(): { readonly user: number; readonly system: number } {
    return { user: this.#pumpUser, system: this.#pumpSystem };
  }

  /** Bundle bytes the last part written took (its records, zero runs as Z records): what it cost on the wire. */
  get lastPartWireBytes(): number {
    return this.#lastPartWireBytes;
  }

  /** Writes the preamble and the H record; must be the first call (abort() aside). */
  async writeHeader(header: object): Promise<void> {
    this.#assertUsable('writeHeader');
    if (this.#headerWritten) throw misuse('writeHeader() called twice');
    if (!isBundleObject(header)) throw misuse('the header must be a JSON object');
    const payload = encodeBundleJson(header);
    this.#writePreamble();
    this.#headerWritten = true;
    this.#writeRecord(RECORD_TYPES.header, payload);
    await this.#drained();
  }

  /** Writes the C record: at most once, after the header and before any part. */
  async writeContents(contents: object): Promise<void> {
    this.#assertUsable('writeContents', { needsHeader: true, needsNoPart: true });
    if (this.#contentsWritten) throw misuse('writeContents() called twice');
    if (this.#partsStarted) throw misuse('writeContents() after the first part: C must precede every B and S record');
    if (!isBundleObject(contents)) throw misuse('the contents must be a JSON object');
    const payload = encodeBundleJson(contents);
    this.#contentsWritten = true;
    this.#writeRecord(RECORD_TYPES.contents, payload);
    await this.#drained();
  }

  /** Writes a K record, so the receiver's stall watchdog knows the sender is alive (also allowed inside a part). */
  async keepalive(): Promise<void> {
    this.#assertUsable('keepalive', { needsHeader: true });
    // While the pump writes the sink nothing else may: the producer's bytes show the sender is alive.
    if (this.#open?.pump) return;
    this.#writeRecord(RECORD_TYPES.keepalive, Buffer.alloc(0));
    await this.#drained();
  }

  /**
   * Writes B, D records from `source` (a Readable, e.g. a producer's stdout) with backpressure, then E
   * with the status `status` resolves to; resolves with the trailer written. Rejects (leaving the part
   * open: only abort() may follow) when the source fails, `status` rejects, the sink fails, or abort()
   * abandons the part (BundleError BUNDLE_ABORTED). A failed producer is not a rejection: the E record
   * carries its status and the caller may call writePart() again for the same part (attempt + 1).
   */
  async writePart(part: string, source: Readable, status: Promise<BundleProducerStatus>): Promise<BundlePartTrailer> {
    this.#assertUsable('writePart', { needsHeader: true, needsNoPart: true });
    if (!isBundlePartId(part)) throw misuse(`part id ${JSON.stringify(part)} is not 1..1024 bytes of UTF-8`);
    if (source.readableEnded || source.destroyed)
      throw misuse(`the source of part "${part}" already ended or was destroyed`);
    const attempt = this.#nextAttempt(part);
    // The status may settle (even reject) long before we await it; this keeps that from counting as unhandled.
    status.catch(() => undefined);
    let rejectAbandoned: (error: Error) => void = () => undefined;
    const abandoned = new Promise<never>((_resolve, reject) => (rejectAbandoned = reject));
    abandoned.catch(() => undefined);
    const open: OpenPart = {
      part,
      attempt,
      hash: createHash('sha256'),
      bytes: 0,
      wireBytes: 0,
      zeroRuns: this.#zeroRuns ? new ZeroRunSplitter() : undefined,
      abandoned,
      abandonedWith: undefined,
      pump: undefined,
      pumpSha256: undefined,
      abandon: (error) => {
        open.abandonedWith ??= error;
        rejectAbandoned(error);
      },
    };
    this.#open = open;
    this.#partsStarted = true;
    this.#writeRecord(RECORD_TYPES.partBegin, encodeBundleJson({ part, attempt }));

    // The pump's source is taken over now, before any await (see detachSource).
    if (this.#mayPump(source)) await this.#pumpPart(open, detachSource(source));
    else await this.#pumpSource(open, source);
    const ended = await Promise.race([status, abandoned]);
    if (open.abandonedWith) throw open.abandonedWith;
    const stderrTail = ended.stderrTail?.slice(-MAX_STDERR_TAIL_CHARS);
    const trailer: BundlePartTrailer = {
      part,
      attempt,
      bytes: open.bytes,
      sha256: open.pumpSha256 ?? open.hash.digest('hex'),
      producerExit: ended.exitCode,
      producerSignal: ended.signal,
      ...(stderrTail === undefined ? {} : { producerStderrTail: stderrTail }),
    };
    this.#writeRecord(RECORD_TYPES.partEnd, encodeBundleJson(trailer));
    this.#lastPartWireBytes = open.wireBytes;
    this.#open = undefined;
    const { producerExit, producerSignal } = trailer;
    this.#parts.set(part, {
      part,
      status: 'sent',
      bytes: trailer.bytes,
      sha256: trailer.sha256,
      producerExit,
      producerSignal,
      attempt,
    });
    await this.#drained();
    return trailer;
  }

  /** Writes an S record: the receiver already holds `skip.part`, so it is not sent. */
  async skipPart(skip: BundleSkip): Promise<void> {
    this.#assertUsable('skipPart', { needsHeader: true, needsNoPart: true });
    if (!isBundlePartId(skip.part)) throw misuse(`part id ${JSON.stringify(skip.part)} is not 1..1024 bytes of UTF-8`);
    if (this.#parts.has(skip.part)) throw misuse(`part "${skip.part}" was already sent; it cannot be skipped too`);
    this.#partsStarted = true;
    const record: BundleSkip = { part: skip.part, bytes: skip.bytes, sha256: skip.sha256, reason: skip.reason };
    this.#writeRecord(RECORD_TYPES.partSkipped, encodeBundleJson(record));
    const { part, bytes, sha256 } = skip;
    this.#parts.set(part, {
      part,
      status: 'skipped',
      bytes,
      sha256,
      producerExit: null,
      producerSignal: null,
      attempt: 0,
    });
    await this.#drained();
  }

  /**
   * Writes an A record: the sender gives up. Allowed at any time before finish(), also before the
   * header and in the middle of a part, which is then abandoned (its writePart() rejects with
   * BUNDLE_ABORTED). Nothing can be written afterwards.
   */
  async abort(abort: BundleAbort): Promise<void> {
    this.#assertUsable('abort');
    const payload = encodeBundleJson({ code: abort.code, reason: abort.reason });
    this.#writePreamble();
    this.#phase = 'aborted';
    const open = this.#open;
    const pump = open?.pump;
    const abandon = (): void => {
      if (!open) return;
      this.#open = undefined;
      open.abandon(
        new BundleError(
          BUNDLE_ERROR_CODES.aborted,
          `part "${open.part}" was abandoned: the bundle was aborted (${abort.code}: ${abort.reason})`,
          {
            details: { part: open.part, attempt: open.attempt, bytes: this.partBytes, code: abort.code },
          },
        ),
      );
    };
    if (pump) {
      // The pump finishes the record it is writing and exits; then A follows it. A pump that does not
      // exit in time (the sink takes nothing) is killed, possibly inside a record: then no A is written,
      // and the receiver sees the bundle cut off (BUNDLE_TRUNCATED) once the transport closes.
      abandon();
      const outcome = await pump.stop();
      if (outcome.kind !== 'done' || this.#failure) {
        this.#release();
        return;
      }
      this.#writeRecord(RECORD_TYPES.abort, payload);
    } else {
      this.#writeRecord(RECORD_TYPES.abort, payload);
      abandon();
    }
    try {
      await this.#drained();
    } finally {
      this.#release();
    }
  }

  /** Writes the T record and resolves with it; throws if a part is open or no header was written. */
  async finish(): Promise<BundleTrailer> {
    this.#assertUsable('finish', { needsHeader: true, needsNoPart: true });
    // T covers the bytes before it (2.0: the control records among them); its own are not hashed (they contain the hash).
    const trailer: BundleTrailer = {
      parts: [...this.#parts.values()].map(({ part, status, bytes, sha256, producerExit, producerSignal }) => ({
        part,
        status,
        bytes,
        sha256,
        producerExit,
        producerSignal,
      })),
      bytes: this.#bytesWritten,
      sha256: this.#streamHash.digest('hex'),
    };
    this.#phase = 'finished';
    this.#writeRecord(RECORD_TYPES.trailer, encodeBundleJson(trailer));
    try {
      await this.#drained();
    } finally {
      this.#release();
    }
    return trailer;
  }

  #assertUsable(method: string, needs: { needsHeader?: boolean; needsNoPart?: boolean } = {}): void {
    if (this.#failure) throw this.#failure;
    if (this.#phase === 'finished' || this.#phase === 'aborted')
      throw misuse(`${method}() after the bundle was ${this.#phase}`);
    if (needs.needsHeader && !this.#headerWritten)
      throw misuse(`${method}() before writeHeader(): H must be the first record`);
    if (needs.needsNoPart && this.#open) throw misuse(`${method}() while part "${this.#open.part}" is open`);
  }

  /** 1 for a new part; previous + 1 after an attempt whose producer failed; otherwise the caller's bug. */
  #nextAttempt(part: string): number {
    const previous = this.#parts.get(part);
    if (previous === undefined) return 1;
    if (previous.status === 'skipped') throw misuse(`part "${part}" was skipped; it cannot be sent too`);
    if (bundleProducerSucceeded(previous)) throw misuse(`part "${part}" was already sent successfully`);
    return previous.attempt + 1;
  }

  #writePreamble(): void {
    if (this.#phase !== 'new') return;
    this.#phase = 'open';
    const preamble = encodeBundlePreamble(this.#version);
    this.#streamHash.update(preamble);
    this.#write(preamble);
  }

  /** Writes one record synchronously, so records never interleave whatever the caller awaits. */
  #writeRecord(type: BundleRecordType, payload: Buffer | readonly Buffer[]): void {
    const pieces = Buffer.isBuffer(payload) ? [payload] : payload;
    const length = pieces.reduce((sum, piece) => sum + piece.length, 0);
    const buffers = [encodeRecordHeader(type, length), ...pieces.filter((piece) => piece.length > 0)];
    // cork/uncork lets a socket send header and payload in one writev.
    const hashed = streamHashCovers(this.#version.major, type);
    this.#sink.cork();
    for (const buffer of buffers) {
      if (hashed) this.#streamHash.update(buffer);
      this.#write(buffer);
      if (this.#open) this.#open.wireBytes += buffer.length;
    }
    this.#sink.uncork();
  }

  /** Writes payload segments: consecutive byte pieces as D records of at most MAX_CHUNK_BYTES, zero runs as Z records. */
  #writeSegments(segments: readonly PayloadSegment[]): void {
    let pieces: Buffer[] = [];
    let length = 0;
    const flush = (): void => {
      if (length > 0) this.#writeRecord(RECORD_TYPES.data, pieces);
      pieces = [];
      length = 0;
    };
    for (const segment of segments) {
      if (!Buffer.isBuffer(segment)) {
        flush();
        this.#writeRecord(RECORD_TYPES.zeros, encodeZeroRun(segment.zeros));
        continue;
      }
      for (let offset = 0; offset < segment.length; ) {
        const take = Math.min(MAX_CHUNK_BYTES - length, segment.length - offset);
        pieces.push(offset === 0 && take === segment.length ? segment : segment.subarray(offset, offset + take));
        length += take;
        offset += take;
        if (length === MAX_CHUNK_BYTES) flush();
      }
    }
    flush();
  }

  #write(buffer: Buffer): void {
    this.#bytesWritten += buffer.length;
    this.#unflushed += 1;
    this.#sink.write(buffer, this.#onWritten);
  }

  /**
   * Whether this part's payload can go through the payload pump (payload-pump.ts): format 2 (the pump's
   * D and Z records are outside the stream hash), DEPLOY_BUNDLE_PUMP not 0, and a source and a sink
   * with a file descriptor (a producer's stdout, a transport's stdin). python3 is checked later.
   */
  #mayPump(source: Readable): boolean {
    return this.#version.major >= 2 && pumpEnabled() && pumpableSource(source) && streamFd(this.#sink) !== undefined;
  }

  /**
   * Moves the part's payload with the payload pump: once every byte node wrote has left it, the pump
   * copies the source's descriptor into the sink's as D and Z records and reports size, hash and wire
   * bytes. Without python3 the node path runs instead.
   */
  async #pumpPart(open: OpenPart, detached: DetachedSource): Promise<void> {
    const { source } = detached;
    try {
      if (!(await pumpPythonAvailable())) {
        detached.reattach();
        return this.#pumpSource(open, source);
      }
      // Everything node wrote (B included) must have left it: the pump writes after it, on the same descriptor.
      while (this.#unflushed > 0) {
        if (open.abandonedWith) throw open.abandonedWith;
        await this.#flushed();
      }
      if (open.abandonedWith) throw open.abandonedWith;
    } catch (error) {
      detached.reattach();
      throw error;
    }
    // Bytes someone else queued in the sink: node moves this part.
    if (this.#sink.writableLength > 0 || this.#sink.writableCorked > 0) {
      detached.reattach();
      return this.#pumpSource(open, source);
    }
    const pump = startPump(detached, this.#sink, { zeroRuns: this.#zeroRuns });
    open.pump = pump;
    const outcome = await pump.outcome;
    open.pump = undefined;
    if (outcome.kind === 'done') {
      const { result } = outcome;
      this.#pumpUser += result.user;
      this.#pumpSystem += result.system;
      this.#bytesWritten += result.wireBytes;
      open.wireBytes += result.wireBytes;
      open.bytes = result.bytes;
      open.pumpSha256 = result.sha256;
    }
    if (open.abandonedWith) throw open.abandonedWith;
    if (outcome.kind === 'sink-failed') {
      // As on the node path, where the sink's failed write destroys it with the errno error.
      this.#bytesWritten += outcome.wireBytes;
      const code = errnoName(outcome.errno);
      const error = Object.assign(new Error(`write ${code}`), { code, syscall: 'write' });
      this.#fail(error);
      this.#sink.destroy(error);
      throw error;
    }
    if (outcome.kind === 'failed' || outcome.result.stopped) {
      const message = outcome.kind === 'failed' ? outcome.message : 'the bundle payload pump stopped unasked';
      const error = new DeployError('internal', 'BUNDLE_PUMP_FAILED', `part "${open.part}": ${message}`, {
        hint: 'Run again with DEPLOY_BUNDLE_PUMP=0 (node moves the bytes), and report the message.',
      });
      this.#fail(error);
      throw error;
    }
  }

  /** Resolves once every write handed to the sink has completed; rejects when the sink failed. */
  #flushed(): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#unflushed === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.#flushWaiters.add({ resolve, reject }));
  }

  /**
   * Copies the source into D records until it ends. Flowing mode with pause() rather than read():
   * read() without a size concatenates everything buffered (a copy), 'data' hands over each chunk as is.
   */
  #pumpSource(open: OpenPart, source: Readable): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (error?: Error): void => {
        if (settled) return;
        settled = true;
        source.off('data', onData);
        stopWatching();
        if (error) {
          source.pause();
          reject(error);
        } else {
          resolve();
        }
      };
      const onData = (chunk: Buffer | string): void => {
        if (settled) return;
        if (typeof chunk === 'string') {
          return settle(
            misuse(`the source of part "${open.part}" emits strings; it must emit Buffers (no setEncoding)`),
          );
        }
        open.hash.update(chunk);
        open.bytes += chunk.length;
        if (open.zeroRuns) {
          this.#writeSegments(open.zeroRuns.push(chunk));
        } else {
          for (let offset = 0; offset < chunk.length; offset += MAX_CHUNK_BYTES) {
            const piece =
              offset === 0 && chunk.length <= MAX_CHUNK_BYTES
                ? chunk
                : chunk.subarray(offset, offset + MAX_CHUNK_BYTES);
            this.#writeRecord(RECORD_TYPES.data, piece);
          }
        }
        if (!this.#sink.writableNeedDrain) return;
        source.pause();
        this.#drained().then(
          () => {
            if (!settled) source.resume();
          },
          (error: Error) => settle(error),
        );
      };
      const stopWatching = finished(source, { readable: true, writable: false }, (error) => {
        if (error) return settle(error);
        // What the zero-run finder held back (a pending run, an incomplete block) ends the payload.
        if (!settled && open.zeroRuns && !open.abandonedWith) this.#writeSegments(open.zeroRuns.end());
        settle();
      });
      open.abandoned.catch((error: Error) => settle(error));
      source.on('data', onData);
      source.resume();
    });
  }

  /** Resolves once the sink can take more (at once if it can now); rejects when the sink failed. */
  #drained(): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#sink.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => this.#drainWaiters.add({ resolve, reject }));
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const waiter of this.#drainWaiters) waiter.reject(error);
    this.#drainWaiters.clear();
    for (const waiter of this.#flushWaiters) waiter.reject(error);
    this.#flushWaiters.clear();
    this.#open?.abandon(error);
    void this.#open?.pump?.stop();
  }

  /** Detaches from the sink once nothing more will be written. */
  #release(): void {
    this.#sink.off('drain', this.#onDrain);
    this.#sink.off('error', this.#onSinkError);
    this.#sink.off('close', this.#onSinkClose);
  }
}
