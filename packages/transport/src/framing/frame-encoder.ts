import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { FRAME_MAGIC, MAX_CHUNK, type StreamTrailer } from '../contract.js';

/** How the producer ended, as recorded in the trailer. */
export interface ProducerStatus {
  readonly exitCode: number | null;
  readonly signal: string | null;
}

/** Encodes a `[u32 BE length]` header. */
function encodeLength(length: number): Buffer {
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(length, 0);
  return header;
}

/**
 * Frames a raw payload (see FRAME_MAGIC in contract.ts): magic, length-prefixed chunks of at most
 * MAX_CHUNK, a zero chunk and a JSON trailer with byte count, SHA-256 and the producer's status.
 * The input side may end before the producer's status is known (piping producer stdout in ends it);
 * the trailer is written once `finish(status)` was called, whichever comes first.
 */
export class FrameEncoder extends Transform {
  readonly #hash: Hash = createHash('sha256');
  #payloadBytes = 0;
  #magicWritten = false;
  #status: ProducerStatus | undefined;
  #pendingFlush: TransformCallback | undefined;
  #trailer: StreamTrailer | undefined;

  constructor() {
    super({ readableHighWaterMark: 256 * 1024 });
  }

  /** Payload bytes framed so far. */
  get payloadBytes(): number {
    return this.#payloadBytes;
  }

  /** The trailer once written. */
  get trailer(): StreamTrailer | undefined {
    return this.#trailer;
  }

  /** Records the producer's exit status, writes the trailer and ends the framed output. */
  finish(status: ProducerStatus): void {
    if (this.#status !== undefined) return;
    this.#status = status;
    const flush = this.#pendingFlush;
    if (flush) {
      this.#pendingFlush = undefined;
      this.#writeTrailer(flush);
    } else if (!this.writableEnded) {
      this.end();
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#writeMagic();
    this.#hash.update(chunk);
    this.#payloadBytes += chunk.length;
    // Headers and payload are pushed as separate buffers: no copy of the payload.
    for (let offset = 0; offset < chunk.length; offset += MAX_CHUNK) {
      const piece = offset === 0 && chunk.length <= MAX_CHUNK ? chunk : chunk.subarray(offset, offset + MAX_CHUNK);
      this.push(encodeLength(piece.length));
      this.push(piece);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#status === undefined) this.#pendingFlush = callback;
    else this.#writeTrailer(callback);
  }

  #writeMagic(): void {
    if (this.#magicWritten) return;
    this.#magicWritten = true;
    this.push(FRAME_MAGIC);
  }

  #writeTrailer(callback: TransformCallback): void {
    this.#writeMagic();
    const status = this.#status!;
    const trailer: StreamTrailer = {
      bytes: this.#payloadBytes,
      sha256: this.#hash.digest('hex'),
      producerExit: status.exitCode,
      producerSignal: status.signal,
    };
    this.#trailer = trailer;
    const json = Buffer.from(JSON.stringify(trailer), 'utf8');
    this.push(Buffer.concat([encodeLength(0), encodeLength(json.length), json]));
    callback();
  }
}
