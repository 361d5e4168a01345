import { Transform, type TransformCallback } from 'node:stream';

/** Counts the bytes passing through and remembers when the last one moved. */
export class ByteMeter extends Transform {
  #bytes = 0;
  #lastMoveAt = Date.now();

  /** Bytes passed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** When the last byte moved (ms since epoch). */
  get lastMoveAt(): number {
    return this.#lastMoveAt;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.#lastMoveAt = Date.now();
    callback(null, chunk);
  }
}
