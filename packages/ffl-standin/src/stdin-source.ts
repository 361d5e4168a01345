import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Chunk size ffl reads and sends (`TRANSFER_CHUNK_SIZE`). */
export const TRANSFER_CHUNK_SIZE = 256 * 1024;

/** The requested offset is no longer available (`--stdin-cache off` window passed it): HTTP 410. */
export class SourceGoneError extends Error {
  constructor() {
    super('Stdin has already been consumed and caching failed');
    this.name = 'SourceGoneError';
  }
}

/** Options of the lazy stdin reader (reference §5). */
export interface StdinSourceOptions {
  /** `--stdin-cache on`: tee into `$TMPDIR/stdin_cache_<random>.bin`. */
  readonly cache: boolean;
  /** Replay window for `--stdin-cache off`, in bytes. */
  readonly windowBytes: number;
  /** Where stdin comes from; opened only on the first read. */
  readonly openInput: () => AsyncIterator<Buffer>;
}

interface StoredChunk {
  readonly offset: number;
  readonly data: Buffer;
}

/**
 * Reads stdin only when a transfer asks for bytes, keeps what is needed for replays (disk cache or an
 * in-memory window) and treats EOF as the end of the content, whatever the producer's exit status.
 */
export class StdinSource {
  private input: AsyncIterator<Buffer> | undefined;
  private pending: Promise<void> | undefined;
  private bytesRead = 0;
  private ended = false;
  private readonly window: StoredChunk[] = [];
  private windowTotal = 0;
  private cacheFd: number | undefined;
  private cachePathValue: string | undefined;
  private cacheFailed = false;

  constructor(private readonly options: StdinSourceOptions) {}

  /** Path of the disk cache once created. */
  get cachePath(): string | undefined {
    return this.cachePathValue;
  }

  /** True once stdin was opened for reading. */
  get started(): boolean {
    return this.input !== undefined;
  }

  /** Whether a transfer may start at `offset` (false = answer 410). */
  canServe(offset: number): boolean {
    if (this.usingDisk()) return true;
    const first = this.window[0];
    const windowStart = first === undefined ? this.bytesRead : first.offset;
    return offset >= windowStart;
  }

  /** Yields the content from `offset` to EOF, reading stdin as needed; throws SourceGoneError or the stdin error. */
  async *readFrom(offset: number): AsyncGenerator<Buffer> {
    let position = offset;
    for (;;) {
      if (position < this.bytesRead) {
        const chunk = this.readStored(position);
        position += chunk.length;
        yield chunk;
        continue;
      }
      if (this.ended) return;
      await this.pull();
    }
  }

  /** Removes the disk cache (normal exit and Ctrl+C; SIGTERM/SIGKILL leave it, as the real tool). */
  removeCache(): void {
    if (this.cacheFd !== undefined) closeSync(this.cacheFd);
    this.cacheFd = undefined;
    if (this.cachePathValue !== undefined) rmSync(this.cachePathValue, { force: true });
  }

  private usingDisk(): boolean {
    return this.options.cache && !this.cacheFailed;
  }

  private pull(): Promise<void> {
    this.pending ??= this.readNext().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async readNext(): Promise<void> {
    if (this.input === undefined) {
      this.input = this.options.openInput();
      if (this.options.cache) this.openCache();
    }
    const result = await this.input.next();
    if (result.done === true) {
      this.ended = true;
      return;
    }
    this.store(Buffer.from(result.value));
  }

  private openCache(): void {
    try {
      const path = join(tmpdir(), `stdin_cache_${randomBytes(6).toString('base64url')}.bin`);
      this.cacheFd = openSync(path, 'w+', 0o600);
      this.cachePathValue = path;
    } catch {
      // Cache errors silently fall back to single-use, like StdinSourceReader.
      this.cacheFailed = true;
    }
  }

  private store(data: Buffer): void {
    const offset = this.bytesRead;
    this.bytesRead += data.length;
    if (this.usingDisk() && this.cacheFd !== undefined) {
      try {
        writeSync(this.cacheFd, data, 0, data.length, offset);
        return;
      } catch {
        this.cacheFailed = true;
      }
    }
    this.window.push({ offset, data });
    this.windowTotal += data.length;
    for (;;) {
      const first = this.window[0];
      if (first === undefined || this.windowTotal - first.data.length < this.options.windowBytes) break;
      this.window.shift();
      this.windowTotal -= first.data.length;
    }
  }

  private readStored(position: number): Buffer {
    const length = Math.min(TRANSFER_CHUNK_SIZE, this.bytesRead - position);
    if (this.usingDisk() && this.cacheFd !== undefined) {
      const buffer = Buffer.alloc(length);
      const count = readSync(this.cacheFd, buffer, 0, length, position);
      return buffer.subarray(0, count);
    }
    const chunk = this.window.find((item) => position >= item.offset && position < item.offset + item.data.length);
    if (chunk === undefined) throw new SourceGoneError();
    const start = position - chunk.offset;
    return chunk.data.subarray(start, Math.min(chunk.data.length, start + length));
  }
}
