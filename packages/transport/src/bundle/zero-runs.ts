/**
 * Finds long runs of zero bytes in a part's payload, so the bundle writer can send them as Z records
 * (a count) instead of D records (the bytes): a sparse file in a tar stream (borg export-tar writes
 * holes out as zeros) then costs about its allocated size on the wire. docs/bundle.md section 2.2.
 */

/** Zero runs are looked for in blocks of this size, aligned to the part's first byte (tar's block size). */
export const ZERO_BLOCK_BYTES = 512;

/** The shortest zero run sent as a Z record; shorter runs travel as D bytes (a Z record is 13 bytes). */
export const MIN_ZERO_RUN_BYTES = 64 * 1024;

const ZERO_BLOCK = Buffer.alloc(ZERO_BLOCK_BYTES);

/** A shared buffer of zeros, for hashing and handing out expanded runs; never written to. */
export const ZERO_PIECE: Buffer = Buffer.alloc(256 * 1024);

/** A piece of a part's payload: bytes to send as they are, or a run of `zeros` zero bytes. */
export type PayloadSegment = Buffer | { readonly zeros: number };

/** True when `length` bytes of `buffer` from `start` are all zero; a few bytes are looked at before the full compare. */
function isZeroRange(buffer: Buffer, start: number, length: number): boolean {
  if (buffer[start] !== 0 || buffer[start + length - 1] !== 0 || buffer[start + (length >> 1)] !== 0) return false;
  return ZERO_BLOCK.compare(buffer, start, start + length, 0, length) === 0;
}

/** Zero bytes as D pieces (a run too short for a Z record). */
function zeroBytes(count: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let left = count; left > 0; left -= ZERO_PIECE.length)
    pieces.push(ZERO_PIECE.subarray(0, Math.min(left, ZERO_PIECE.length)));
  return pieces;
}

/**
 * Splits a payload, chunk by chunk, into byte pieces and zero runs of at least `minRun` bytes made of
 * whole zero blocks aligned to the payload's start. The concatenation of the output (runs expanded)
 * is exactly the input. Byte pieces are subarrays of the input chunks (never copied); only zero
 * bytes are held back between chunks, and only as a count.
 */
export class ZeroRunSplitter {
  readonly #minRun: number;
  /** Bytes seen of the current, incomplete block (0 at a block boundary). */
  #blockFill = 0;
  /** Whether those bytes held a non-zero byte: then they were sent already and the rest of the block goes out as is. */
  #blockDirty = false;
  /** Zero bytes counted (whole blocks) and not yet emitted. */
  #pendingZeros = 0;

  constructor(minRun = MIN_ZERO_RUN_BYTES) {
    if (minRun < ZERO_BLOCK_BYTES)
      throw new RangeError(`a zero run must be at least one block (${ZERO_BLOCK_BYTES} bytes)`);
    this.#minRun = minRun;
  }

  /** The segments `chunk` completes, in order. Only zero bytes are ever held back. */
  push(chunk: Buffer): PayloadSegment[] {
    const out: PayloadSegment[] = [];
    let index = 0;
    if (this.#blockFill > 0) {
      const take = Math.min(ZERO_BLOCK_BYTES - this.#blockFill, chunk.length);
      const head = chunk.subarray(0, take);
      if (this.#blockDirty) out.push(head);
      else if (!isZeroRange(head, 0, take)) {
        // The block held back as zeros turns out not to be one: what was counted goes out as bytes.
        this.#flushZeros(out);
        out.push(...zeroBytes(this.#blockFill), head);
        this.#blockDirty = true;
      }
      this.#blockFill += take;
      if (this.#blockFill < ZERO_BLOCK_BYTES) return out;
      if (!this.#blockDirty) this.#pendingZeros += ZERO_BLOCK_BYTES;
      this.#blockFill = 0;
      this.#blockDirty = false;
      index = take;
    }
    let literalStart = index;
    const fullEnd = index + Math.floor((chunk.length - index) / ZERO_BLOCK_BYTES) * ZERO_BLOCK_BYTES;
    for (let block = index; block < fullEnd; block += ZERO_BLOCK_BYTES) {
      if (isZeroRange(chunk, block, ZERO_BLOCK_BYTES)) {
        if (literalStart < block) out.push(chunk.subarray(literalStart, block));
        literalStart = block + ZERO_BLOCK_BYTES;
        this.#pendingZeros += ZERO_BLOCK_BYTES;
      } else if (this.#pendingZeros > 0) {
        this.#flushZeros(out);
      }
    }
    // An incomplete block at the end: held back (only counted) while it is all zeros, sent now otherwise.
    const tail = chunk.length - fullEnd;
    const tailDirty = tail > 0 && !isZeroRange(chunk, fullEnd, tail);
    // Pending zeros here mean the last full block was zero, so no bytes are open before them.
    if (tailDirty) this.#flushZeros(out);
    const literalEnd = tailDirty ? chunk.length : fullEnd;
    if (literalStart < literalEnd) out.push(chunk.subarray(literalStart, literalEnd));
    this.#blockFill = tail;
    this.#blockDirty = tailDirty;
    return out;
  }

  /** The segments still held back, once the payload ended. */
  end(): PayloadSegment[] {
    const out: PayloadSegment[] = [];
    this.#flushZeros(out);
    if (!this.#blockDirty) out.push(...zeroBytes(this.#blockFill));
    this.#blockFill = 0;
    this.#blockDirty = false;
    return out;
  }

  #flushZeros(out: PayloadSegment[]): void {
    const zeros = this.#pendingZeros;
    if (zeros === 0) return;
    this.#pendingZeros = 0;
    if (zeros >= this.#minRun) out.push({ zeros });
    else out.push(...zeroBytes(zeros));
  }
}
