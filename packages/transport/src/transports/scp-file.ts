import { createHash } from 'node:crypto';
import { fstatSync, readFileSync, readSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { read } from 'node:fs';
import { promisify } from 'node:util';
import { TransportError } from '@deploykit/core';
import type { StreamTrailer } from '../contract.js';
import { FRAME_ERROR_CODES, type ProducerStatus } from '../framing/index.js';
import type { TarGuard } from '../receive/tar-guard.js';

const readAt = promisify(read);

/**
 * The scp transport's staged stream file (docs/decisions/0015-*.md): a fixed SCP_HEADER_BYTES
 * header, then the producer's raw bytes exactly as it wrote them (its stdout is the file). The
 * header holds SCP_FILE_MAGIC, a u32 BE length and the JSON trailer (byte count, SHA-256 of the
 * payload, producer status), zero-padded; it is written last, over a placeholder whose length is
 * 0, so a file whose header was never completed is refused. Both sides are the same deploykit.
 */
export const SCP_FILE_MAGIC = Buffer.from('DKSCP1\n\0', 'ascii');
export const SCP_HEADER_BYTES = 4096;
/** Read size wherever deploy itself reads the staged bytes (hashing on both sides). */
export const SCP_READ_BYTES = 1024 * 1024;
/** How long the source's hasher waits before looking again when it caught up with the producer. */
const FOLLOW_POLL_MS = 10;

/** True when `start` (the file's first bytes) is a staged stream file of this format. */
export function isStagedStreamFile(start: Buffer): boolean {
  return start.length >= SCP_FILE_MAGIC.length && start.subarray(0, SCP_FILE_MAGIC.length).equals(SCP_FILE_MAGIC);
}

/** The header for `trailer` (or the placeholder without one). */
export function encodeStagedHeader(trailer?: StreamTrailer): Buffer {
  const header = Buffer.alloc(SCP_HEADER_BYTES);
  SCP_FILE_MAGIC.copy(header, 0);
  if (trailer !== undefined) {
    const json = Buffer.from(JSON.stringify(trailer), 'utf8');
    header.writeUInt32BE(json.length, SCP_FILE_MAGIC.length);
    json.copy(header, SCP_FILE_MAGIC.length + 4);
  }
  return header;
}

function garbage(message: string): TransportError {
  return new TransportError(FRAME_ERROR_CODES.garbage, `the staged stream file is corrupt: ${message}`, {
    hint: 'Something other than the deploykit sender wrote or changed the staged file; retry, and check the hosts.',
  });
}

/**
 * Reads the header of a staged file of `size` bytes and checks its length against the trailer:
 * shorter is FRAME_TRUNCATED, longer FRAME_GARBAGE, a header that is not ours FRAME_BAD_MAGIC or
 * FRAME_GARBAGE. Returns the trailer (its producer status and hash are the caller's to check).
 */
export function parseStagedHeader(header: Buffer, size: number): StreamTrailer {
  if (!isStagedStreamFile(header))
    throw new TransportError(FRAME_ERROR_CODES.badMagic, 'the staged file does not start with the deploykit header', {
      hint: 'The sender did not write this file: run both sides with the same deploykit version.',
    });
  if (size < SCP_HEADER_BYTES || header.length < SCP_HEADER_BYTES)
    throw new TransportError(
      FRAME_ERROR_CODES.truncated,
      `the staged file is truncated (${size} bytes, header incomplete)`,
      {
        hint: 'The copy broke off; nothing was swapped in. Retry.',
      },
    );
  const length = header.readUInt32BE(SCP_FILE_MAGIC.length);
  if (length === 0) throw garbage('its header was never completed (the sender did not finish it)');
  if (length > SCP_HEADER_BYTES - SCP_FILE_MAGIC.length - 4) throw garbage(`header length ${length} is not plausible`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(
      header.subarray(SCP_FILE_MAGIC.length + 4, SCP_FILE_MAGIC.length + 4 + length).toString('utf8'),
    );
  } catch {
    throw garbage('its trailer is not JSON');
  }
  const trailer = parsed as StreamTrailer;
  if (
    typeof trailer !== 'object' ||
    trailer === null ||
    !Number.isSafeInteger(trailer.bytes) ||
    trailer.bytes < 0 ||
    typeof trailer.sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(trailer.sha256) ||
    !(trailer.producerExit === null || Number.isInteger(trailer.producerExit)) ||
    !(trailer.producerSignal === null || typeof trailer.producerSignal === 'string')
  )
    throw garbage('its trailer has the wrong shape');
  const payload = size - SCP_HEADER_BYTES;
  if (payload < trailer.bytes)
    throw new TransportError(
      FRAME_ERROR_CODES.truncated,
      `the staged file is truncated: ${payload} payload bytes, the sender wrote ${trailer.bytes}`,
      {
        hint: 'The copy broke off or the file was cut; nothing was swapped in. Retry.',
        details: { received: payload, sent: trailer.bytes },
      },
    );
  if (payload > trailer.bytes)
    throw garbage(
      `${payload - trailer.bytes} bytes more than the sender wrote (${payload} payload bytes, sent ${trailer.bytes})`,
    );
  return trailer;
}

/**
 * Hashes `length` bytes of `file` from `offset` with large reads (the page cache, mostly), calling
 * `onBytes` after every read. Resolves with the hex SHA-256; rejects when the file is shorter.
 */
export async function hashFileRange(
  file: FileHandle | number,
  offset: number,
  length: number,
  onBytes?: (bytes: number) => void,
  stopped?: () => boolean,
): Promise<string> {
  const fd = typeof file === 'number' ? file : file.fd;
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(SCP_READ_BYTES);
  let done = 0;
  while (done < length) {
    if (stopped?.()) throw new Error('stopped');
    const { bytesRead } = await readAt(fd, buffer, 0, Math.min(buffer.length, length - done), offset + done);
    if (bytesRead === 0) throw new Error(`the file ended after ${done} of ${length} bytes`);
    hash.update(buffer.subarray(0, bytesRead));
    done += bytesRead;
    onBytes?.(bytesRead);
  }
  return hash.digest('hex');
}

/**
 * Runs `guard` over the tar headers of `length` bytes of `file` from `offset`, seeking over entry
 * data instead of reading it (throws the guard's error). The guard sees every header tar will see.
 */
export async function guardFileHeaders(
  guard: TarGuard,
  file: FileHandle | number,
  offset: number,
  length: number,
): Promise<void> {
  const fd = typeof file === 'number' ? file : file.fd;
  const buffer = Buffer.allocUnsafe(4096);
  let position = 0;
  while (position < length && !guard.ended) {
    const skip = Math.min(guard.dataLeft, length - position);
    if (skip > 0) {
      guard.skipData(skip);
      position += skip;
      continue;
    }
    const { bytesRead } = await readAt(fd, buffer, 0, Math.min(buffer.length, length - position), offset + position);
    if (bytesRead === 0) break;
    guard.check(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
}

/**
 * The source half of a staged file: its header placeholder goes into `fd` first (the producer,
 * started next with `fd` as its stdout, appends after it), a follower hashes the payload from the
 * page cache while the producer writes, and finish() writes the real header once the producer ended.
 */
export class StagedFileWriter {
  readonly #fd: number;
  readonly #hash = createHash('sha256');
  readonly #buffer = Buffer.allocUnsafe(SCP_READ_BYTES);
  #hashed = 0;
  #lastMoveAt = Date.now();
  #producerEnded = false;
  #stopped = false;
  #follower: Promise<void> | undefined;
  #error: Error | undefined;
  #trailer: StreamTrailer | undefined;

  constructor(fd: number) {
    this.#fd = fd;
  }

  /** Payload bytes hashed so far (the producer's bytes, a moment later). */
  get bytes(): number {
    return this.#hashed;
  }

  /** When the payload last grew (ms since epoch). */
  get lastMoveAt(): number {
    return this.#lastMoveAt;
  }

  /** The trailer once finish() wrote it. */
  get trailer(): StreamTrailer | undefined {
    return this.#trailer;
  }

  /** Writes the placeholder header (the fd's offset ends after it) and starts following the file. */
  start(): void {
    writeSync(this.#fd, encodeStagedHeader());
    this.#follower = this.#follow().catch((error: Error) => {
      this.#error = error;
    });
  }

  /** Stops following (abort). */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * The file offset the producer shares with us (its stdout is our open file description), from
   * /proc; -1 when unknown (then the file is hashed again at the end, to be safe). A producer that
   * only appends keeps it at the file's size.
   */
  #sharedOffset(): number {
    try {
      const match = /^pos:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${this.#fd}`, 'utf8'));
      return match === null ? -1 : Number(match[1]);
    } catch {
      return -1;
    }
  }

  async #follow(): Promise<void> {
    while (!this.#stopped) {
      const { bytesRead } = await readAt(
        this.#fd,
        this.#buffer,
        0,
        this.#buffer.length,
        SCP_HEADER_BYTES + this.#hashed,
      );
      if (bytesRead > 0) {
        this.#hash.update(this.#buffer.subarray(0, bytesRead));
        this.#hashed += bytesRead;
        this.#lastMoveAt = Date.now();
        continue;
      }
      // Caught up: done once the producer ended and nothing more is in the file.
      if (this.#producerEnded && fstatSync(this.#fd).size <= SCP_HEADER_BYTES + this.#hashed) return;
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    }
  }

  /** After the producer exited: hashes what is left, writes the header, returns the trailer. */
  async finish(status: ProducerStatus): Promise<StreamTrailer> {
    this.#producerEnded = true;
    await this.#follower;
    if (this.#error !== undefined) throw this.#error;
    if (this.#stopped) throw new Error('the staged file was abandoned');
    const start = Buffer.alloc(SCP_HEADER_BYTES);
    readSync(this.#fd, start, 0, SCP_HEADER_BYTES, 0);
    if (!start.equals(encodeStagedHeader()))
      throw new Error(
        `the producer wrote before the start of its output (it seeks on its stdout to an absolute offset); stream it with --transport ssh instead`,
      );
    const size = fstatSync(this.#fd).size;
    let sha256: string;
    // Only once the producer exited does the offset hold still (a write in progress grows the file
    // before it moves the offset). Below the size: the producer went back and rewrote bytes already
    // hashed (pg_dump -Fc rewrites its TOC on a regular file): hash the final file.
    if (this.#sharedOffset() !== size) {
      this.#hashed = size - SCP_HEADER_BYTES;
      sha256 = await hashFileRange(this.#fd, SCP_HEADER_BYTES, this.#hashed);
    } else {
      sha256 = this.#hash.digest('hex');
    }
    const trailer: StreamTrailer = {
      bytes: this.#hashed,
      sha256,
      producerExit: status.exitCode,
      producerSignal: status.signal,
    };
    writeSync(this.#fd, encodeStagedHeader(trailer), 0, SCP_HEADER_BYTES, 0);
    this.#trailer = trailer;
    return trailer;
  }
}
