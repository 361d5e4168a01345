import { Transform, type TransformCallback } from 'node:stream';

/** Counts the bytes passing through and remembers when the last one moved. */
export class ByteMeter extends Transform {
  #bytes = 0;
  #lastMoveAt = Date.now();

  #followed: { bytes: () => number; lastMoveAt: () => number } | undefined;

  /** Bytes passed so far. */
  get bytes(): number {
    return this.#followed?.bytes() ?? this.#bytes;
  }

  /** When the last byte moved (ms since epoch). */
  get lastMoveAt(): number {
    return this.#followed?.lastMoveAt() ?? this.#lastMoveAt;
  }

  /** Reports another counter's bytes instead (bytes that never pass through here, e.g. a producer writing a file). */
  follow(bytes: () => number, lastMoveAt: () => number): void {
    this.#followed = { bytes, lastMoveAt };
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.#lastMoveAt = Date.now();
    callback(null, chunk);
  }
}
