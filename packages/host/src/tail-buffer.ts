/** Keeps the last `limit` bytes written to it: stderr tails for error messages without unbounded memory. */
export class TailBuffer {
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #size = 0;
  #total = 0;
  constructor(limit: number) {
    this.#limit = limit;
  }
  /** Appends a chunk, dropping the oldest bytes beyond the limit. */
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    this.#total += chunk.length;
    while (this.#size - (this.#chunks[0]?.length ?? 0) >= this.#limit && this.#chunks.length > 1) {
      this.#size -= this.#chunks.shift()!.length;
    }
  }
  /** Total bytes ever pushed. */
  get total(): number {
    return this.#total;
  }
  /** The kept tail as UTF-8 text. */
  text(): string {
    const all = Buffer.concat(this.#chunks);
    return all.subarray(Math.max(0, all.length - this.#limit)).toString('utf8');
  }
}

/** Returns the last `lines` lines of a text (for error messages). */
export function tailLines(text: string, lines = 20): string {
  const parts = text.replace(/\s+$/, '').split('\n');
  return parts.slice(-lines).join('\n');
}
