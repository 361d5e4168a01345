import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { DeployError } from '@deploykit/core';
import {
  BUNDLE_ERROR_CODES,
  BUNDLE_MAGIC,
  BUNDLE_PREAMBLE_BYTES,
  BUNDLE_MINORS_KNOWN,
  BundleError,
  MAX_CHUNK_BYTES,
  MAX_JSON_RECORD,
  RECORD_HEADER_BYTES,
  RECORD_TYPES,
  RECORD_TYPES_SINCE_MINOR,
  ZERO_RUN_PAYLOAD_BYTES,
  bundleProducerSucceeded,
  describeBundleProducer,
  describeRecordType,
  escapeBundleBytes,
  formatBundleVersion,
  isBundleAbort,
  isBundleObject,
  isBundlePartBegin,
  isBundlePartTrailer,
  isBundleSkip,
  isBundleTrailer,
  parseBundleJson,
  streamHashCovers,
  type BundleAbort,
  type BundlePartTrailer,
  type BundleSkip,
  type BundleTrailer,
  type BundleTrailerPart,
  type BundleVersion,
} from './bundle-format.js';
import { ZERO_PIECE } from './zero-runs.js';

/** What BundleReader.next() yields, in bundle order. */
export type BundleItem =
  | { readonly kind: 'header'; readonly version: BundleVersion; readonly header: Record<string, unknown> }
  | { readonly kind: 'contents'; readonly contents: Record<string, unknown> }
  /**
   * One attempt of a part. `data` must be consumed (its backpressure reaches the input) and ends only
   * after the E record verified; `done` resolves then, or rejects with a BundleError (PART_MISMATCH,
   * PRODUCER_FAILED, ABORTED, or a fatal error such as TRUNCATED), `data` then failing with the same error.
   */
  | {
      readonly kind: 'part';
      readonly part: string;
      readonly attempt: number;
      readonly data: Readable;
      readonly done: Promise<BundlePartTrailer>;
    }
  | { readonly kind: 'skip'; readonly skip: BundleSkip }
  /** The sender gave up (A record); nothing after it is read. */
  | { readonly kind: 'abort'; readonly abort: BundleAbort }
  /** The T record verified; nothing after it is read. */
  | { readonly kind: 'end'; readonly trailer: BundleTrailer };

/**
 * How much of a part's payload the reader queues in `data` before it pauses the input. Small, so a
 * slow consumer holds back the sender instead of filling memory.
 */
const PART_DATA_HIGH_WATER_MARK = 256 * 1024;

/** 'zero-count': reading a Z record's count; 'zeros': handing out that many zero bytes (no input needed). */
type ParseState = 'preamble' | 'record-header' | 'json' | 'data' | 'zero-count' | 'zeros';

/** The part between its B and E records. */
interface OpenPart {
  readonly part: string;
  readonly attempt: number;
  readonly hash: Hash;
  bytes: number;
  readonly data: Readable;
  readonly resolve: (trailer: BundlePartTrailer) => void;
  readonly reject: (error: Error) => void;
}

/** What the reader saw of a part: the last attempt's received size and hash, or its skip. */
interface SeenPart extends BundleTrailerPart {
  readonly attempt: number;
}

/** What to do next, per error: every message of a code ends in the same advice. */
const HINTS = {
  badMagic:
    'Something else wrote to the transport before the bundle (a login banner, a shell error, a deploy that does not send ' +
    'bundles): check what the sending side prints, use the same deploykit on both hosts, then re-run.',
  versionUnsupported:
    'Use the same deploykit version on both hosts (upgrade the older one), then re-run the migration.',
  truncated:
    'The transfer broke off or the sender stopped; nothing of the unfinished part is used. ' +
    'Re-run the migration: parts already verified are reused.',
  garbage:
    'Something other than the deploykit sender wrote into the bundle, or the two sides disagree on the format: check the ' +
    'transport, use the same deploykit on both hosts, then re-run the migration (parts already verified are reused).',
  partMismatch:
    'The bytes changed in transit; nothing of this part is used. ' +
    'Re-run the migration (parts already verified are reused); if it repeats, check the transport path.',
  producerFailed:
    'The producer on the source host failed, so this output is incomplete and not used; the sender may retry the part. ' +
    'See its stderr on the source host.',
  streamMismatch:
    'Bytes were lost, added or altered in transit; parts that verified on their own are still good. ' +
    'Re-run the migration (they are reused) and check the transport path.',
  aborted:
    'Nothing of the unfinished part is used. Fix what the sender reports, then re-run the migration: parts already verified are reused.',
} as const;

/** The last three lines of a stderr tail, on one line for a message. */
function lastLines(text: string): string {
  return text.split('\n').slice(-3).join(' | ');
}

/** "1.x and 2.x": the majors this reader reads, for messages. */
const MAJORS_READ = Object.keys(BUNDLE_MINORS_KNOWN)
  .map((major) => `${major}.x`)
  .join(' and ');

/**
 * Reads a migration bundle (docs/bundle.md) from `input`, verifying every record as it arrives: each
 * part against its E record, the whole stream against the T record. Reads formats 1.x (the stream hash
 * covers every byte before T) and 2.x (it covers the control records only). Pull-based: next() yields one
 * item at a time and the reader reads ahead at most one item, so a slow caller pauses the input.
 * Never copies part payload: `data` gets subarrays of the input's chunks.
 */
export class BundleReader {
  readonly #input: Readable;
  readonly #streamHash: Hash = createHash('sha256');
  /** Unparsed input chunks; the first one is parsed from #offset. Usually at most one. */
  readonly #chunks: Buffer[] = [];
  #offset = 0;
  #inputBytes = 0;
  /** Bytes the parser consumed: the position in the bundle, for messages and T.bytes. */
  #position = 0;
  #lastByteAt = Date.now();
  #inputEnded = false;
  /** Why the input stopped early (an error, or a close without EOF); reported once the bytes before it are parsed. */
  #inputLost: Error | undefined;

  #state: ParseState = 'preamble';
  readonly #field: Buffer = Buffer.alloc(BUNDLE_PREAMBLE_BYTES);
  #fieldFill = 0;
  #recordType = 0;
  #recordStart = 0;
  #recordLeft = 0;
  /** Zero bytes of the current Z record not yet handed to the open part. */
  #zerosLeft = 0;
  #jsonPieces: Buffer[] = [];

  #version: BundleVersion | undefined;
  /** Whether D payloads and Z counts go into the stream hash: format 1.x only. */
  #hashPayloadRecords = false;
  #recordsSeen = 0;
  #headerSeen = false;
  #contentsSeen = false;
  #partsSeen = false;
  #open: OpenPart | undefined;
  /** Whether the open part's `data` asked for more since its last push returned false. */
  #dataWanted = false;
  /** Parts in order of first appearance (a Map keeps a key's first position when it is set again). */
  readonly #seen = new Map<string, SeenPart>();

  /** Items parsed but not yet taken by next(); the reader stops parsing outside a part while one waits. */
  readonly #queue: BundleItem[] = [];
  #waiter: { resolve: (item: BundleItem) => void; reject: (error: Error) => void } | undefined;
  #terminal: BundleItem | undefined;
  #failure: Error | undefined;
  #driving = false;
  #driveAgain = false;

  /** Starts reading `input` (flowing, paused whenever the reader has no use for more bytes). */
  constructor(input: Readable) {
    this.#input = input;
    input.on('data', this.#onData);
    input.on('end', this.#onEnd);
    // Keeps an input error from crashing the process: it becomes BUNDLE_TRUNCATED, reported by next().
    input.on('error', this.#onError);
    input.on('close', this.#onClose);
    this.#drive();
  }

  /** Bytes read from the input so far (anything after T included). */
  get inputBytes(): number {
    return this.#inputBytes;
  }

  /** Date.now() of the last input byte (keepalives count), the construction time before any: for stall watchdogs. */
  get lastByteAt(): number {
    return this.#lastByteAt;
  }

  /**
   * Next item; the previous part's data must be consumed for the reader to get past that part.
   * Rejects with a BundleError on a fatal error (every call after it too). After 'end' or 'abort'
   * it yields that item again. Keepalives are consumed silently.
   */
  next(): Promise<BundleItem> {
    const queued = this.#queue.shift();
    if (queued !== undefined) {
      this.#drive();
      return Promise.resolve(queued);
    }
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#terminal) return Promise.resolve(this.#terminal);
    if (this.#waiter) {
      return Promise.reject(
        new DeployError(
          'internal',
          'BUNDLE_READER_MISUSE',
          'bundle reader: next() called while a previous next() is pending',
          {
            hint: 'This is a bug in deploykit; run again with --verbose and report the output.',
          },
        ),
      );
    }
    return new Promise<BundleItem>((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#drive();
    });
  }

  /** Stops reading and destroys the input (e.g. on a local failure); the open part and pending next() fail with `error`. */
  destroy(error?: Error): void {
    // The input first, with the error, so a pipeline around it reports the same cause.
    if (!this.#input.destroyed) this.#input.destroy(error);
    this.#fail(error ?? new Error('the bundle reader was destroyed'));
  }

  readonly #onData = (chunk: Buffer | string): void => {
    if (typeof chunk === 'string') {
      this.destroy(new TypeError('the bundle input emits strings; it must emit Buffers (no setEncoding)'));
      return;
    }
    this.#inputBytes += chunk.length;
    this.#lastByteAt = Date.now();
    if (this.#stopped) return;
    this.#chunks.push(chunk);
    this.#drive();
  };

  readonly #onEnd = (): void => {
    this.#inputEnded = true;
    this.#drive();
  };

  readonly #onError = (error: Error): void => this.#loseInput(error);

  readonly #onClose = (): void => this.#loseInput(new Error('the input closed before its end'));

  /** A failed input is the "input lost" case: bytes already received are still parsed, then BUNDLE_TRUNCATED. */
  #loseInput(reason: Error): void {
    if (this.#stopped || this.#inputEnded) return;
    this.#inputEnded = true;
    this.#inputLost = reason;
    this.#drive();
  }

  /** True once the bundle ended (T or A) or failed: nothing more is parsed. */
  get #stopped(): boolean {
    return this.#terminal !== undefined || this.#failure !== undefined;
  }

  /** Runs the parser as far as it may go; re-entrant calls (from pushes into `data`) just ask for another round. */
  #drive(): void {
    if (this.#driving) {
      this.#driveAgain = true;
      return;
    }
    this.#driving = true;
    try {
      do {
        this.#driveAgain = false;
        this.#parseAvailable();
      } while (this.#driveAgain);
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.#driving = false;
    }
    this.#controlFlow();
  }

  #parseAvailable(): void {
    while (!this.#stopped && this.#mayParse()) {
      if (this.#state === 'zeros') {
        this.#emitZeros();
        continue;
      }
      const chunk = this.#chunks[0];
      if (chunk === undefined) {
        if (this.#inputEnded) {
          const lost = this.#inputLost;
          this.#fail(
            lost ? this.#truncated(`the input failed (${lost.message})`, lost) : this.#truncated('the input ended'),
          );
        }
        return;
      }
      if (this.#offset >= chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
        continue;
      }
      this.#offset = this.#parse(chunk, this.#offset);
    }
  }

  /** Whether the parser may consume more bytes now. */
  #mayParse(): boolean {
    if (this.#state === 'data' || this.#state === 'zeros') {
      const data = this.#open!.data;
      return data.destroyed || this.#dataWanted;
    }
    // Outside a part, read ahead only until one item waits for next(); inside a part, records are
    // read as far as `data` takes payload (an E of an empty part needs no consumer).
    if (this.#state === 'record-header' && this.#fieldFill === 0 && this.#open === undefined)
      return this.#queue.length === 0;
    return true;
  }

  /** Resumes the input when the parser waits for bytes, pauses it otherwise: this is where backpressure reaches the input. */
  #controlFlow(): void {
    if (this.#stopped) return;
    const wantInput = this.#chunks.length === 0 && !this.#inputEnded && this.#mayParse();
    if (wantInput) this.#input.resume();
    else this.#input.pause();
  }

  /** Parses from `chunk` at `offset`; returns the new offset. Throws BundleError on bad input. */
  #parse(chunk: Buffer, offset: number): number {
    switch (this.#state) {
      case 'data':
        return this.#parseData(chunk, offset);
      case 'zeros':
        return offset;
      case 'zero-count': {
        const take = Math.min(ZERO_RUN_PAYLOAD_BYTES - this.#fieldFill, chunk.length - offset);
        chunk.copy(this.#field, this.#fieldFill, offset, offset + take);
        this.#fieldFill += take;
        this.#position += take;
        if (this.#fieldFill === ZERO_RUN_PAYLOAD_BYTES) {
          this.#fieldFill = 0;
          this.#completeZeroCount();
        }
        return offset + take;
      }
      case 'json': {
        const take = Math.min(this.#recordLeft, chunk.length - offset);
        this.#jsonPieces.push(chunk.subarray(offset, offset + take));
        this.#recordLeft -= take;
        this.#position += take;
        if (this.#recordLeft === 0) this.#completeJson();
        return offset + take;
      }
      case 'preamble':
      case 'record-header': {
        const need = this.#state === 'preamble' ? BUNDLE_PREAMBLE_BYTES : RECORD_HEADER_BYTES;
        const take = Math.min(need - this.#fieldFill, chunk.length - offset);
        chunk.copy(this.#field, this.#fieldFill, offset, offset + take);
        this.#fieldFill += take;
        this.#position += take;
        if (this.#state === 'preamble') this.#checkMagicPrefix(chunk.subarray(offset + take));
        if (this.#fieldFill === need) {
          this.#fieldFill = 0;
          if (this.#state === 'preamble') this.#completePreamble();
          else this.#completeRecordHeader();
        }
        return offset + take;
      }
    }
  }

  #parseData(chunk: Buffer, offset: number): number {
    const open = this.#open!;
    const take = Math.min(this.#recordLeft, chunk.length - offset);
    const piece = offset === 0 && take === chunk.length ? chunk : chunk.subarray(offset, offset + take);
    open.hash.update(piece);
    if (this.#hashPayloadRecords) this.#streamHash.update(piece);
    open.bytes += take;
    this.#recordLeft -= take;
    this.#position += take;
    if (this.#recordLeft === 0) this.#state = 'record-header';
    // A consumer that destroyed `data` does not want the rest: it is still hashed and verified, not queued.
    if (!open.data.destroyed && !open.data.push(piece)) this.#dataWanted = false;
    return offset + take;
  }

  /** A Z record's count read: the part's payload goes on with that many zero bytes. */
  #completeZeroCount(): void {
    const field = this.#field.subarray(0, ZERO_RUN_PAYLOAD_BYTES);
    if (this.#hashPayloadRecords) this.#streamHash.update(field);
    const count = field.readBigUInt64BE(0);
    if (count === 0n || count > BigInt(Number.MAX_SAFE_INTEGER))
      throw this.#garbage(`a Z record of ${count} zero bytes (allowed: 1..2^53-1)`);
    this.#zerosLeft = Number(count);
    this.#state = 'zeros';
  }

  /** Hands the next piece of a zero run to the open part, hashed like received bytes (they are its payload). */
  #emitZeros(): void {
    const open = this.#open!;
    const take = Math.min(this.#zerosLeft, ZERO_PIECE.length);
    const piece = ZERO_PIECE.subarray(0, take);
    open.hash.update(piece);
    open.bytes += take;
    this.#zerosLeft -= take;
    if (this.#zerosLeft === 0) this.#state = 'record-header';
    if (!open.data.destroyed && !open.data.push(piece)) this.#dataWanted = false;
  }

  /** Fails as soon as the bytes read so far differ from the magic; the message shows them with what follows. */
  #checkMagicPrefix(rest: Buffer): void {
    const length = Math.min(this.#fieldFill, BUNDLE_MAGIC.length);
    if (this.#field.subarray(0, length).equals(BUNDLE_MAGIC.subarray(0, length))) return;
    const start = Buffer.concat([this.#field.subarray(0, this.#fieldFill), rest.subarray(0, 48)]);
    throw new BundleError(
      BUNDLE_ERROR_CODES.badMagic,
      `the input is not a deploykit bundle: it starts with ${escapeBundleBytes(start)}, not "DKBUNDLE"`,
      {
        hint: HINTS.badMagic,
        details: { firstBytes: start.toString('latin1') },
      },
    );
  }

  #completePreamble(): void {
    const version: BundleVersion = {
      major: this.#field.readUInt16BE(BUNDLE_MAGIC.length),
      minor: this.#field.readUInt16BE(BUNDLE_MAGIC.length + 2),
    };
    if (BUNDLE_MINORS_KNOWN[version.major] === undefined) {
      const theirs = formatBundleVersion(version);
      throw new BundleError(
        BUNDLE_ERROR_CODES.versionUnsupported,
        `this bundle is format ${theirs}; this deploy reads formats ${MAJORS_READ}: install a deploykit that reads format ${version.major} on this host`,
        {
          hint: HINTS.versionUnsupported,
          details: { bundleVersion: theirs, readerVersions: MAJORS_READ },
        },
      );
    }
    this.#version = version;
    this.#hashPayloadRecords = version.major < 2;
    this.#streamHash.update(this.#field.subarray(0, BUNDLE_PREAMBLE_BYTES));
    this.#state = 'record-header';
  }

  /** Checks a record's type, length and place before its payload is read, so garbage fails early. */
  #completeRecordHeader(): void {
    const type = this.#field[0]!;
    const length = this.#field.readUInt32BE(1);
    this.#recordStart = this.#position - RECORD_HEADER_BYTES;
    this.#recordType = type;
    const letter = String.fromCharCode(type);
    const open = this.#open;
    if (this.#recordsSeen === 0 && letter !== RECORD_TYPES.header && letter !== RECORD_TYPES.abort) {
      throw this.#garbage(`the first record must be H (header), got ${describeRecordType(type)}`);
    }
    this.#recordsSeen += 1;
    switch (letter) {
      case RECORD_TYPES.header:
        if (this.#headerSeen) throw this.#garbage('a second H record');
        break;
      case RECORD_TYPES.contents:
        if (this.#contentsSeen) throw this.#garbage('a second C record');
        if (this.#partsSeen)
          throw this.#garbage('a C record after the first part: C must precede every B and S record');
        break;
      case RECORD_TYPES.partBegin:
      case RECORD_TYPES.partSkipped:
      case RECORD_TYPES.trailer:
        if (open)
          throw this.#garbage(`a ${describeRecordType(type)} record inside part "${open.part}", which was never ended`);
        break;
      case RECORD_TYPES.data:
        if (!open) throw this.#garbage('a D record outside a part');
        if (length === 0 || length > MAX_CHUNK_BYTES)
          throw this.#garbage(`a D record of ${length} bytes (allowed: 1..${MAX_CHUNK_BYTES})`);
        break;
      case RECORD_TYPES.zeros:
        if (this.#version!.major === 1 && this.#version!.minor < RECORD_TYPES_SINCE_MINOR[RECORD_TYPES.zeros]!)
          throw this.#garbage(
            `a Z record in a bundle of format ${formatBundleVersion(this.#version!)} (Z exists since 1.1)`,
          );
        if (!open) throw this.#garbage('a Z record outside a part');
        if (length !== ZERO_RUN_PAYLOAD_BYTES)
          throw this.#garbage(`a Z record of ${length} bytes (must be ${ZERO_RUN_PAYLOAD_BYTES})`);
        break;
      case RECORD_TYPES.partEnd:
        if (!open) throw this.#garbage('an E record without an open part');
        break;
      case RECORD_TYPES.keepalive:
        if (length !== 0) throw this.#garbage(`a K record of ${length} bytes (must be empty)`);
        break;
      case RECORD_TYPES.abort:
        break;
      default: {
        const version = this.#version!;
        const known: BundleVersion = { major: version.major, minor: BUNDLE_MINORS_KNOWN[version.major]! };
        if (version.minor > known.minor) {
          const theirs = formatBundleVersion(version);
          throw new BundleError(
            BUNDLE_ERROR_CODES.versionUnsupported,
            `this bundle is format ${theirs} and uses record type ${describeRecordType(type)}, which this deploy (format ${formatBundleVersion(known)}) does not know: install the same deploykit on both hosts`,
            {
              hint: HINTS.versionUnsupported,
              details: {
                bundleVersion: theirs,
                readerVersion: formatBundleVersion(known),
                offset: this.#recordStart,
              },
            },
          );
        }
        throw this.#garbage(`unknown record type ${describeRecordType(type)}`);
      }
    }
    if (streamHashCovers(this.#version!.major, letter))
      this.#streamHash.update(this.#field.subarray(0, RECORD_HEADER_BYTES));
    if (letter === RECORD_TYPES.keepalive) return;
    this.#recordLeft = length;
    if (letter === RECORD_TYPES.data) {
      this.#state = 'data';
      return;
    }
    if (letter === RECORD_TYPES.zeros) {
      this.#state = 'zero-count';
      return;
    }
    if (length === 0 || length > MAX_JSON_RECORD) {
      throw this.#garbage(`a ${describeRecordType(type)} record of ${length} bytes (allowed: 1..${MAX_JSON_RECORD})`);
    }
    this.#state = 'json';
  }

  #completeJson(): void {
    const pieces = this.#jsonPieces;
    this.#jsonPieces = [];
    this.#state = 'record-header';
    const payload = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    const letter = String.fromCharCode(this.#recordType);
    if (letter !== RECORD_TYPES.trailer) this.#streamHash.update(payload);
    let value: unknown;
    try {
      value = parseBundleJson(payload);
    } catch (error) {
      throw this.#garbage(
        `the ${describeRecordType(this.#recordType)} record is not JSON (${(error as Error).message})`,
      );
    }
    switch (letter) {
      case RECORD_TYPES.header:
        if (!isBundleObject(value)) throw this.#wrongShape();
        this.#headerSeen = true;
        return this.#deliver({ kind: 'header', version: this.#version!, header: value });
      case RECORD_TYPES.contents:
        if (!isBundleObject(value)) throw this.#wrongShape();
        this.#contentsSeen = true;
        return this.#deliver({ kind: 'contents', contents: value });
      case RECORD_TYPES.partBegin:
        return this.#beginPart(value);
      case RECORD_TYPES.partEnd:
        return this.#endPart(value);
      case RECORD_TYPES.partSkipped:
        return this.#skipPart(value);
      case RECORD_TYPES.abort:
        return this.#abort(value);
      case RECORD_TYPES.trailer:
        return this.#verifyTrailer(value);
      default:
        return;
    }
  }

  #beginPart(value: unknown): void {
    if (!isBundlePartBegin(value)) throw this.#wrongShape();
    const { part, attempt } = value;
    const previous = this.#seen.get(part);
    if (previous === undefined) {
      if (attempt !== 1) throw this.#garbage(`part "${part}" begins with attempt ${attempt}; a first attempt is 1`);
    } else {
      if (previous.status === 'skipped') throw this.#garbage(`part "${part}" was skipped and is now sent`);
      if (bundleProducerSucceeded(previous))
        throw this.#garbage(`part "${part}" is sent again although its producer succeeded`);
      if (attempt !== previous.attempt + 1)
        throw this.#garbage(`part "${part}" attempt ${attempt} follows attempt ${previous.attempt}`);
    }
    this.#partsSeen = true;
    const data = new Readable({
      highWaterMark: PART_DATA_HIGH_WATER_MARK,
      read: () => {
        if (this.#open?.data !== data) return;
        this.#dataWanted = true;
        this.#drive();
      },
    });
    // The same error reaches the consumer through `done` (and next() when fatal); without a listener
    // an unread `data` would crash the process when it is failed.
    data.on('error', () => undefined);
    // A consumer that destroys `data` lets the reader skip the rest of the part: parse on.
    data.on('close', () => this.#drive());
    let resolve: (trailer: BundlePartTrailer) => void = () => undefined;
    let reject: (error: Error) => void = () => undefined;
    const done = new Promise<BundlePartTrailer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that only watches `data` must not get an unhandled rejection.
    done.catch(() => undefined);
    this.#open = { part, attempt, hash: createHash('sha256'), bytes: 0, data, resolve, reject };
    this.#dataWanted = false;
    this.#deliver({ kind: 'part', part, attempt, data, done });
  }

  #endPart(value: unknown): void {
    if (!isBundlePartTrailer(value)) throw this.#wrongShape();
    const open = this.#open!;
    if (value.part !== open.part || value.attempt !== open.attempt) {
      throw this.#garbage(
        `an E record for part "${value.part}" attempt ${value.attempt} while part "${open.part}" attempt ${open.attempt} is open`,
      );
    }
    this.#open = undefined;
    const received = { bytes: open.bytes, sha256: open.hash.digest('hex') };
    const { producerExit, producerSignal } = value;
    this.#seen.set(open.part, {
      part: open.part,
      status: 'sent',
      ...received,
      producerExit,
      producerSignal,
      attempt: open.attempt,
    });
    const where = `part "${open.part}" (attempt ${open.attempt})`;
    if (received.bytes !== value.bytes || received.sha256 !== value.sha256) {
      return this.#failPart(
        open,
        new BundleError(
          BUNDLE_ERROR_CODES.partMismatch,
          `${where} differs from what was sent: received ${received.bytes} bytes sha256 ${received.sha256}, the sender wrote ${value.bytes} bytes sha256 ${value.sha256}`,
          {
            hint: HINTS.partMismatch,
            details: {
              part: open.part,
              attempt: open.attempt,
              received,
              sent: { bytes: value.bytes, sha256: value.sha256 },
            },
          },
        ),
      );
    }
    if (!bundleProducerSucceeded(value)) {
      const tail = value.producerStderrTail?.trim();
      return this.#failPart(
        open,
        new BundleError(
          BUNDLE_ERROR_CODES.producerFailed,
          `${where}: the ${describeBundleProducer(value)} after ${value.bytes} bytes${tail ? `; its stderr ended with: ${lastLines(tail)}` : ''}`,
          {
            hint: HINTS.producerFailed,
            details: {
              part: open.part,
              attempt: open.attempt,
              producerExit,
              producerSignal,
              bytes: value.bytes,
              stderrTail: value.producerStderrTail,
            },
          },
        ),
      );
    }
    // Only now may the consumer see EOF: a consumer that commits on EOF commits verified bytes only.
    open.data.push(null);
    open.resolve(value);
  }

  #skipPart(value: unknown): void {
    if (!isBundleSkip(value)) throw this.#wrongShape();
    if (this.#seen.has(value.part)) throw this.#garbage(`part "${value.part}" is skipped after it was sent`);
    this.#partsSeen = true;
    const { part, bytes, sha256 } = value;
    this.#seen.set(part, {
      part,
      status: 'skipped',
      bytes,
      sha256,
      producerExit: null,
      producerSignal: null,
      attempt: 0,
    });
    this.#deliver({ kind: 'skip', skip: value });
  }

  #abort(value: unknown): void {
    if (!isBundleAbort(value)) throw this.#wrongShape();
    const open = this.#open;
    if (open) {
      this.#open = undefined;
      this.#failPart(
        open,
        new BundleError(
          BUNDLE_ERROR_CODES.aborted,
          `the sender aborted the bundle inside part "${open.part}" (attempt ${open.attempt}, ${open.bytes} bytes received): ${value.reason} (${value.code})`,
          {
            hint: HINTS.aborted,
            details: { part: open.part, attempt: open.attempt, bytes: open.bytes, code: value.code },
          },
        ),
      );
    }
    this.#finishReading({ kind: 'abort', abort: value });
  }

  #verifyTrailer(value: unknown): void {
    if (!isBundleTrailer(value)) throw this.#wrongShape();
    const received = { bytes: this.#recordStart, sha256: this.#streamHash.digest('hex') };
    if (value.bytes !== received.bytes || value.sha256 !== received.sha256) {
      throw this.#streamMismatch(
        `received ${received.bytes} bytes sha256 ${received.sha256} before the T record, the sender wrote ${value.bytes} bytes sha256 ${value.sha256}`,
      );
    }
    const seen = [...this.#seen.values()];
    const fields = ['part', 'status', 'bytes', 'sha256', 'producerExit', 'producerSignal'] as const;
    for (let index = 0; index < Math.max(seen.length, value.parts.length); index += 1) {
      const ours = seen[index];
      const theirs = value.parts[index];
      if (ours === undefined || theirs === undefined) {
        throw this.#streamMismatch(`the T record lists ${value.parts.length} parts, the bundle carried ${seen.length}`);
      }
      const differing = fields.find((field) => ours[field] !== theirs[field]);
      if (differing !== undefined) {
        throw this.#streamMismatch(
          `entry ${index} of the T record's parts says ${differing} ${JSON.stringify(theirs[differing])} for part "${theirs.part}", the bundle carried ${JSON.stringify(ours[differing])} for part "${ours.part}"`,
        );
      }
    }
    this.#finishReading({ kind: 'end', trailer: value });
  }

  #deliver(item: BundleItem): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter.resolve(item);
    } else {
      this.#queue.push(item);
    }
  }

  /**
   * Ends parsing after T or A. The rest of the input is read and dropped rather than left paused: a
   * transport may append status text, and a paused pipe never reports its EOF, so the process
   * behind it could never be seen to exit.
   */
  #finishReading(item: BundleItem): void {
    this.#terminal = item;
    this.#chunks.length = 0;
    this.#deliver(item);
    this.#input.resume();
  }

  #failPart(open: OpenPart, error: BundleError): void {
    open.reject(error);
    if (!open.data.destroyed) open.data.destroy(error);
  }

  /** A fatal error: the open part, a pending next() and every later next() fail with it; the input is destroyed. */
  #fail(error: Error): void {
    if (this.#stopped) return;
    this.#failure = error;
    this.#chunks.length = 0;
    const open = this.#open;
    this.#open = undefined;
    if (open) {
      open.reject(error);
      if (!open.data.destroyed) open.data.destroy(error);
    }
    const waiter = this.#waiter;
    this.#waiter = undefined;
    // Items parsed before the failure are still handed out first (next() checks the queue first).
    if (waiter) {
      const queued = this.#queue.shift();
      if (queued !== undefined) waiter.resolve(queued);
      else waiter.reject(error);
    }
    // Stops the sender of a broken bundle (it sees EPIPE) instead of reading on; pause() first, as
    // destroy() alone lets a running flow loop hand out what is already buffered.
    this.#input.pause();
    if (!this.#inputEnded && !this.#input.destroyed) this.#input.destroy();
  }

  #truncated(what: string, cause?: Error): BundleError {
    const open = this.#open;
    let where: string;
    if (this.#state === 'preamble') where = 'inside the preamble (magic and version)';
    else if (open) where = `inside part "${open.part}" (attempt ${open.attempt}, ${open.bytes} bytes of it received)`;
    else if (this.#state === 'json') where = `inside a ${describeRecordType(this.#recordType)} record`;
    else if (this.#fieldFill > 0) where = 'inside a record header';
    else where = 'between records';
    return new BundleError(
      BUNDLE_ERROR_CODES.truncated,
      `${what} after ${this.#position} bytes of the bundle, ${where}, before its T record`,
      {
        hint: HINTS.truncated,
        ...(cause === undefined ? {} : { cause }),
        details: { bytes: this.#position, part: open?.part, partBytes: open?.bytes },
      },
    );
  }

  #garbage(what: string): BundleError {
    return new BundleError(BUNDLE_ERROR_CODES.garbage, `the bundle is corrupt at byte ${this.#recordStart}: ${what}`, {
      hint: HINTS.garbage,
      details: { offset: this.#recordStart, recordType: describeRecordType(this.#recordType) },
    });
  }

  #wrongShape(): BundleError {
    return this.#garbage(`the ${describeRecordType(this.#recordType)} record has the wrong shape`);
  }

  #streamMismatch(what: string): BundleError {
    return new BundleError(BUNDLE_ERROR_CODES.streamMismatch, `the bundle differs from what was sent: ${what}`, {
      hint: HINTS.streamMismatch,
      details: { bytes: this.#recordStart },
    });
  }
}
