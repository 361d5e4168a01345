import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { TransportError } from '@deploykit/core';
import { FRAME_MAGIC, MAX_CHUNK, type StreamTrailer } from '../contract.js';

/** Largest trailer JSON we accept; a real one is about 150 bytes. */
export const MAX_TRAILER_BYTES = 64 * 1024;

/** Stable error codes of the frame decoder (TransportError.code). */
export const FRAME_ERROR_CODES = {
  badMagic: 'FRAME_BAD_MAGIC',
  garbage: 'FRAME_GARBAGE',
  truncated: 'FRAME_TRUNCATED',
  mismatch: 'FRAME_MISMATCH',
  producerFailed: 'PRODUCER_FAILED',
} as const;

type DecoderState = 'magic' | 'length' | 'chunk' | 'trailer-length' | 'trailer' | 'done';

/** Renders the first bytes of unexpected input for an error message, control characters escaped. */
function previewBytes(bytes: Buffer): string {
  const text = bytes.subarray(0, 48).toString('latin1');
  return JSON.stringify(text.replace(/[^\x20-\x7e]/g, '.'));
}

/** Checks the shape of a parsed trailer. */
function isTrailer(value: unknown): value is StreamTrailer {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['bytes'] === 'number' &&
    Number.isSafeInteger(v['bytes']) &&
    v['bytes'] >= 0 &&
    typeof v['sha256'] === 'string' &&
    /^[0-9a-f]{64}$/.test(v['sha256']) &&
    (v['producerExit'] === null || (typeof v['producerExit'] === 'number' && Number.isInteger(v['producerExit']))) &&
    (v['producerSignal'] === null || typeof v['producerSignal'] === 'string')
  );
}

/** Describes how the producer ended, for messages. */
export function describeProducerStatus(trailer: Pick<StreamTrailer, 'producerExit' | 'producerSignal'>): string {
  if (trailer.producerSignal !== null) return `producer was killed by ${trailer.producerSignal}`;
  if (trailer.producerExit === null) return 'producer ended without an exit code';
  return `producer exited with code ${trailer.producerExit}`;
}

/**
 * Unframes a framed stream (see FRAME_MAGIC in contract.ts) and passes the payload on. Verifies the
 * magic, every length and the trailer (byte count, SHA-256, producer status); bytes after the
 * trailer are ignored and the output ends right at the trailer. Fails with a TransportError whose
 * code is one of FRAME_ERROR_CODES. Payload already passed on before a failure is the caller's to
 * discard (the receiver writes into staging only). Emits 'trailer' (StreamTrailer) once verified.
 */
export class FrameDecoder extends Transform {
  readonly #hash: Hash = createHash('sha256');
  #state: DecoderState = 'magic';
  #field: Buffer = Buffer.alloc(FRAME_MAGIC.length);
  #need = FRAME_MAGIC.length;
  #fill = 0;
  #chunkLeft = 0;
  #payloadBytes = 0;
  #inputBytes = 0;
  #trailer: StreamTrailer | undefined;

  constructor() {
    super({ readableHighWaterMark: 256 * 1024 });
  }

  /** Payload bytes passed on so far. */
  get payloadBytes(): number {
    return this.#payloadBytes;
  }

  /** Framed bytes received so far (including anything after the trailer). */
  get inputBytes(): number {
    return this.#inputBytes;
  }

  /** The trailer once it was read (set before it is verified). */
  get trailer(): StreamTrailer | undefined {
    return this.#trailer;
  }

  /** True once a trailer was read and verified. */
  get complete(): boolean {
    return this.#state === 'done';
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#inputBytes += chunk.length;
    try {
      let offset = 0;
      while (offset < chunk.length && this.#state !== 'done') {
        if (this.#state === 'chunk') {
          const take = Math.min(this.#chunkLeft, chunk.length - offset);
          const piece = take === chunk.length ? chunk : chunk.subarray(offset, offset + take);
          this.#hash.update(piece);
          this.#payloadBytes += take;
          this.#chunkLeft -= take;
          offset += take;
          this.push(piece);
          if (this.#chunkLeft === 0) this.#expect('length', 4);
          continue;
        }
        const take = Math.min(this.#need - this.#fill, chunk.length - offset);
        chunk.copy(this.#field, this.#fill, offset, offset + take);
        this.#fill += take;
        if (this.#state === 'magic') this.#checkMagicPrefix(this.#fill - take, chunk.subarray(offset));
        offset += take;
        if (this.#fill === this.#need) this.#completeField();
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.#state === 'done') return callback();
    callback(
      new TransportError(
        FRAME_ERROR_CODES.truncated,
        `stream ended before its trailer (truncated after ${this.#payloadBytes} payload bytes, ${this.#inputBytes} framed bytes)`,
        {
          hint: 'The transfer broke off or the sender died; nothing was swapped in. Check the sender side, then retry.',
          details: { payloadBytes: this.#payloadBytes, inputBytes: this.#inputBytes, state: this.#state },
        },
      ),
    );
  }

  #expect(state: DecoderState, need: number): void {
    this.#state = state;
    this.#need = need;
    this.#fill = 0;
    if (this.#field.length < need) this.#field = Buffer.alloc(need);
  }

  /** Fails unless the magic read so far matches; earlier bytes plus `rest` (this chunk) go into the message. */
  #checkMagicPrefix(earlier: number, rest: Buffer): void {
    if (this.#field.subarray(0, this.#fill).equals(FRAME_MAGIC.subarray(0, this.#fill))) return;
    const start = Buffer.concat([this.#field.subarray(0, earlier), rest.subarray(0, 48)]);
    throw new TransportError(
      FRAME_ERROR_CODES.badMagic,
      `stream does not start with the deploykit frame header (got ${previewBytes(start)})`,
      {
        hint: 'The sender did not frame this stream, or something wrote to the transport before it: run both sides with the same deploykit version.',
      },
    );
  }

  #completeField(): void {
    const field = this.#field;
    switch (this.#state) {
      case 'magic':
        this.#expect('length', 4);
        return;
      case 'length': {
        const length = field.readUInt32BE(0);
        if (length === 0) return this.#expect('trailer-length', 4);
        if (length > MAX_CHUNK) throw this.#garbage(`chunk length ${length} exceeds ${MAX_CHUNK}`);
        this.#state = 'chunk';
        this.#chunkLeft = length;
        return;
      }
      case 'trailer-length': {
        const length = field.readUInt32BE(0);
        if (length === 0 || length > MAX_TRAILER_BYTES)
          throw this.#garbage(`trailer length ${length} is not plausible`);
        return this.#expect('trailer', length);
      }
      case 'trailer':
        this.#verifyTrailer(field.subarray(0, this.#need));
        return;
      default:
        return;
    }
  }

  #garbage(what: string): TransportError {
    return new TransportError(
      FRAME_ERROR_CODES.garbage,
      `stream is corrupt after ${this.#payloadBytes} payload bytes: ${what}`,
      {
        hint: 'Something other than the deploykit sender wrote into the stream; check the transport, then retry.',
        details: { payloadBytes: this.#payloadBytes },
      },
    );
  }

  #verifyTrailer(json: Buffer): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json.toString('utf8'));
    } catch {
      throw this.#garbage('trailer is not JSON');
    }
    if (!isTrailer(parsed)) throw this.#garbage('trailer has the wrong shape');
    this.#trailer = parsed;
    if (parsed.producerExit !== 0 || parsed.producerSignal !== null) {
      throw new TransportError(
        FRAME_ERROR_CODES.producerFailed,
        `${describeProducerStatus(parsed)} after ${parsed.bytes} bytes`,
        {
          hint: 'The producer on the source host failed, so its output is incomplete; see its stderr on the source side.',
          details: { producerExit: parsed.producerExit, producerSignal: parsed.producerSignal, bytes: parsed.bytes },
        },
      );
    }
    const sha256 = this.#hash.digest('hex');
    if (parsed.bytes !== this.#payloadBytes || parsed.sha256 !== sha256) {
      throw new TransportError(
        FRAME_ERROR_CODES.mismatch,
        `stream differs from what was sent: received ${this.#payloadBytes} bytes sha256 ${sha256}, sender wrote ${parsed.bytes} bytes sha256 ${parsed.sha256}`,
        {
          hint: 'The bytes were altered in transit; retry, and check the transport path.',
          details: { received: this.#payloadBytes, sent: parsed.bytes },
        },
      );
    }
    this.#state = 'done';
    this.push(null);
    this.emit('trailer', parsed);
  }
}
