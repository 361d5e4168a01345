/**
 * The migration bundle format v2.0: constants, record shapes, errors and encoding helpers shared by
 * BundleWriter and BundleReader. docs/bundle.md is the specification; this file must agree with it.
 *
 * Layout: `DKBUNDLE`, u16 BE major, u16 BE minor, then records `[u8 type][u32 BE length][payload]`.
 * 1.1 added the Z record (a run of zero bytes inside a part); 2.0 changed what the stream hash covers
 * (the control records only, no D or Z record). 1.0 and 1.1 bundles are read as before.
 */
import { TransportError } from '@deploykit/core';

/** The 8 ASCII bytes every bundle starts with. */
export const BUNDLE_MAGIC: Buffer = Buffer.from('DKBUNDLE', 'ascii');

/** Bytes before the first record: magic, u16 major, u16 minor. */
export const BUNDLE_PREAMBLE_BYTES = BUNDLE_MAGIC.length + 4;

/** Bytes of a record header: u8 type, u32 BE payload length. */
export const RECORD_HEADER_BYTES = 5;

/** A bundle format version; readers accept any minor of the major they know. */
export interface BundleVersion {
  readonly major: number;
  readonly minor: number;
}

/** The version this code writes by default. */
export const BUNDLE_VERSION: BundleVersion = Object.freeze({ major: 2, minor: 0 });

/**
 * The newest minor of each major this code reads (and writes, with `new BundleWriter(sink, { major })`).
 * 1.x: the stream hash covers every byte before T. 2.x: it covers the control records only (not D, Z).
 */
export const BUNDLE_MINORS_KNOWN: Readonly<Record<number, number>> = Object.freeze({ 1: 1, 2: 0 });

/** Record types each minor version of major 1 added; a reader meeting a later one in a newer minor says so. */
export const RECORD_TYPES_SINCE_MINOR: Readonly<Record<string, number>> = Object.freeze({ Z: 1 });

/** Record types by name; the byte on the wire is the ASCII code of the letter. */
export const RECORD_TYPES = {
  header: 'H',
  contents: 'C',
  partBegin: 'B',
  data: 'D',
  /** A run of zero bytes of the open part (since bundle 1.1): payload u64 BE count. */
  zeros: 'Z',
  partEnd: 'E',
  partSkipped: 'S',
  keepalive: 'K',
  abort: 'A',
  trailer: 'T',
} as const;

/** One of the record type letters of RECORD_TYPES. */
export type BundleRecordType = (typeof RECORD_TYPES)[keyof typeof RECORD_TYPES];

/** Whether the stream hash of a bundle of `major` covers a record of `type`: since 2.0 D and Z records are left out. */
export function streamHashCovers(major: number, type: BundleRecordType | string): boolean {
  if (type === RECORD_TYPES.trailer) return false;
  return major < 2 || (type !== RECORD_TYPES.data && type !== RECORD_TYPES.zeros);
}

/** Largest payload of a D record. Bounds what a reader must hold of one record and keeps progress fine-grained. */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;

/** Payload size of a Z record: one u64 BE count of zero bytes. */
export const ZERO_RUN_PAYLOAD_BYTES = 8;

/** Largest payload of a JSON record (H, C, B, E, S, A, T). C may carry a volume listing, hence the generous size. */
export const MAX_JSON_RECORD = 256 * 1024 * 1024;

/** Longest part id, in UTF-8 bytes. */
export const MAX_PART_ID_BYTES = 1024;

/** Payload of a B record: a part (or a new attempt of it) begins. */
export interface BundlePartBegin {
  readonly part: string;
  /** 1 for the first attempt, previous + 1 for a retried producer. */
  readonly attempt: number;
}

/** Payload of an E record: what the sender wrote for one attempt of a part and how its producer ended. */
export interface BundlePartTrailer {
  readonly part: string;
  readonly attempt: number;
  /** Payload bytes of this attempt (the sum of its D payloads). */
  readonly bytes: number;
  /** Lowercase hex SHA-256 of those payload bytes. */
  readonly sha256: string;
  /** The producer's exit code; null when it was killed by a signal. */
  readonly producerExit: number | null;
  readonly producerSignal: string | null;
  /** The last lines of the producer's stderr, for messages when it failed. */
  readonly producerStderrTail?: string;
}

/** Payload of an S record: the receiver already holds this part, so it is not sent. */
export interface BundleSkip {
  readonly part: string;
  /** Size and lowercase hex SHA-256 of the part the receiver is expected to hold. */
  readonly bytes: number;
  readonly sha256: string;
  readonly reason: string;
}

/** Payload of an A record: the sender gives up; nothing follows. */
export interface BundleAbort {
  /** A stable code of the sender's failure (e.g. `INTERRUPTED`, `PRODUCER_FAILED`). */
  readonly code: string;
  readonly reason: string;
}

/** One entry of the trailer's part list: the final attempt of a part, or its skip. */
export interface BundleTrailerPart {
  readonly part: string;
  readonly status: 'sent' | 'skipped';
  readonly bytes: number;
  readonly sha256: string;
  /** null/null for a skipped part. */
  readonly producerExit: number | null;
  readonly producerSignal: string | null;
}

/** Payload of the T record: every part in order of first appearance, and the size and stream hash of the bundle before T. */
export interface BundleTrailer {
  readonly parts: readonly BundleTrailerPart[];
  /** Bundle bytes before the T record, magic included (D and Z records included): the T record's offset. */
  readonly bytes: number;
  /**
   * Lowercase hex SHA-256 of those bytes; since 2.0 of the control records among them only (preamble,
   * H, C, B, E, S, K, A: every byte before T except the D and Z records, headers included).
   */
  readonly sha256: string;
}

/** How a producer ended, as the writer is told it. */
export interface BundleProducerStatus {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail?: string;
}

/** Stable codes of BundleError. */
export const BUNDLE_ERROR_CODES = {
  /** The input does not start with `DKBUNDLE`. */
  badMagic: 'BUNDLE_BAD_MAGIC',
  /** The bundle's major version is not one this reader knows. */
  versionUnsupported: 'BUNDLE_VERSION_UNSUPPORTED',
  /** The input ended (or failed) before the T record. */
  truncated: 'BUNDLE_TRUNCATED',
  /** The bytes do not follow the format (record order, lengths, JSON shapes). */
  garbage: 'BUNDLE_GARBAGE',
  /** A part's received bytes differ from its E record. Not fatal to the reader. */
  partMismatch: 'BUNDLE_PART_MISMATCH',
  /** A part's producer failed (E with exit != 0 or a signal). Not fatal: the sender may retry the part. */
  producerFailed: 'BUNDLE_PRODUCER_FAILED',
  /** The T record does not match the bundle received (size, hash or part list). */
  streamMismatch: 'BUNDLE_STREAM_MISMATCH',
  /** The sender wrote an A record; the open part (if any) is abandoned. */
  aborted: 'BUNDLE_ABORTED',
  /** Writer side: the sink closed or failed before the bundle was finished. */
  sinkClosed: 'BUNDLE_SINK_CLOSED',
} as const;

/** One of the codes of BUNDLE_ERROR_CODES. */
export type BundleErrorCode = (typeof BUNDLE_ERROR_CODES)[keyof typeof BUNDLE_ERROR_CODES];

/** A bundle that cannot be read or written as it should; `code` is one of BUNDLE_ERROR_CODES, `hint` says what to do next. */
export class BundleError extends TransportError {
  declare readonly code: BundleErrorCode;
  constructor(
    code: BundleErrorCode,
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
    this.name = 'BundleError';
  }
}

/** Encodes the 12-byte preamble: magic, major, minor. */
export function encodeBundlePreamble(version: BundleVersion = BUNDLE_VERSION): Buffer {
  const preamble = Buffer.allocUnsafe(BUNDLE_PREAMBLE_BYTES);
  BUNDLE_MAGIC.copy(preamble, 0);
  preamble.writeUInt16BE(version.major, BUNDLE_MAGIC.length);
  preamble.writeUInt16BE(version.minor, BUNDLE_MAGIC.length + 2);
  return preamble;
}

/** Encodes a record header: type byte and u32 BE payload length. */
export function encodeRecordHeader(type: BundleRecordType, length: number): Buffer {
  const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  header[0] = type.charCodeAt(0);
  header.writeUInt32BE(length, 1);
  return header;
}

/** Encodes the payload of a Z record: `count` zero bytes (1 .. 2^53 - 1) as u64 BE. */
export function encodeZeroRun(count: number): Buffer {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`a zero run of ${count} bytes`);
  const payload = Buffer.allocUnsafe(ZERO_RUN_PAYLOAD_BYTES);
  payload.writeBigUInt64BE(BigInt(count));
  return payload;
}

/** Encodes one record as [header] or [header, payload]; the payload buffer is passed through, not copied. */
export function encodeRecord(type: BundleRecordType, payload: Buffer): Buffer[] {
  const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  header[0] = type.charCodeAt(0);
  header.writeUInt32BE(payload.length, 1);
  return payload.length === 0 ? [header] : [header, payload];
}

/** Serializes a JSON record payload; throws a RangeError above MAX_JSON_RECORD (a writer bug, not bad input). */
export function encodeBundleJson(value: object): Buffer {
  const payload = Buffer.from(JSON.stringify(value), 'utf8');
  if (payload.length > MAX_JSON_RECORD)
    throw new RangeError(`bundle JSON record of ${payload.length} bytes exceeds ${MAX_JSON_RECORD}`);
  return payload;
}

// fatal: invalid UTF-8 is an error instead of U+FFFD; ignoreBOM: a BOM stays in the text, so JSON.parse rejects it.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parses a JSON record payload (strict UTF-8, no BOM); throws on anything else. */
export function parseBundleJson(payload: Buffer): unknown {
  return JSON.parse(strictUtf8.decode(payload));
}

/** True for a JSON object (not null, not an array). */
export function isBundleObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True for a part id: a string of 1..MAX_PART_ID_BYTES UTF-8 bytes. */
export function isBundlePartId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && Buffer.byteLength(value, 'utf8') <= MAX_PART_ID_BYTES;
}

function isByteCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isSha256(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}

function isProducerStatusFields(v: Record<string, unknown>): boolean {
  const exit = v['producerExit'];
  const signal = v['producerSignal'];
  const exitOk = exit === null || (typeof exit === 'number' && Number.isInteger(exit));
  return exitOk && (signal === null || typeof signal === 'string');
}

/** Checks the shape of a B payload (unknown fields are allowed and ignored). */
export function isBundlePartBegin(value: unknown): value is BundlePartBegin {
  if (!isBundleObject(value)) return false;
  const attempt = value['attempt'];
  return isBundlePartId(value['part']) && typeof attempt === 'number' && Number.isSafeInteger(attempt) && attempt >= 1;
}

/** Checks the shape of an E payload (unknown fields are allowed and ignored). */
export function isBundlePartTrailer(value: unknown): value is BundlePartTrailer {
  if (!isBundlePartBegin(value)) return false;
  const v = value as unknown as Record<string, unknown>;
  const tail = v['producerStderrTail'];
  const tailOk = tail === undefined || typeof tail === 'string';
  return isByteCount(v['bytes']) && isSha256(v['sha256']) && isProducerStatusFields(v) && tailOk;
}

/** Checks the shape of an S payload (unknown fields are allowed and ignored). */
export function isBundleSkip(value: unknown): value is BundleSkip {
  if (!isBundleObject(value)) return false;
  const { part, bytes, sha256, reason } = value;
  return isBundlePartId(part) && isByteCount(bytes) && isSha256(sha256) && typeof reason === 'string';
}

/** Checks the shape of an A payload (unknown fields are allowed and ignored). */
export function isBundleAbort(value: unknown): value is BundleAbort {
  return isBundleObject(value) && typeof value['code'] === 'string' && typeof value['reason'] === 'string';
}

function isTrailerPart(value: unknown): value is BundleTrailerPart {
  if (!isBundleObject(value)) return false;
  const status = value['status'];
  return (
    isBundlePartId(value['part']) &&
    (status === 'sent' || status === 'skipped') &&
    isByteCount(value['bytes']) &&
    isSha256(value['sha256']) &&
    isProducerStatusFields(value)
  );
}

/** Checks the shape of a T payload (unknown fields are allowed and ignored). */
export function isBundleTrailer(value: unknown): value is BundleTrailer {
  if (!isBundleObject(value)) return false;
  const parts = value['parts'];
  return Array.isArray(parts) && parts.every(isTrailerPart) && isByteCount(value['bytes']) && isSha256(value['sha256']);
}

/** True when the producer exited 0 without a signal: only then is the part usable. */
export function bundleProducerSucceeded(status: Pick<BundlePartTrailer, 'producerExit' | 'producerSignal'>): boolean {
  return status.producerExit === 0 && status.producerSignal === null;
}

/** Describes how a part's producer ended, for messages. */
export function describeBundleProducer(status: Pick<BundlePartTrailer, 'producerExit' | 'producerSignal'>): string {
  if (status.producerSignal !== null) return `producer was killed by ${status.producerSignal}`;
  if (status.producerExit === null) return 'producer ended without an exit code';
  return `producer exited with code ${status.producerExit}`;
}

/** Renders a version as `major.minor`. */
export function formatBundleVersion(version: BundleVersion): string {
  return `${version.major}.${version.minor}`;
}

/** Renders the first bytes of unexpected input for a message: printable ASCII as is, the rest as \n, \t or \xNN. */
export function escapeBundleBytes(bytes: Buffer, limit = 48): string {
  let text = '';
  for (const byte of bytes.subarray(0, limit)) {
    if (byte === 0x0a) text += '\\n';
    else if (byte === 0x0d) text += '\\r';
    else if (byte === 0x09) text += '\\t';
    else if (byte === 0x22 || byte === 0x5c) text += `\\${String.fromCharCode(byte)}`;
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `"${text}"${bytes.length > limit ? '...' : ''}`;
}

/** Renders a record type byte for messages: `'H'`, or `0x00` when it is not a printable letter. */
export function describeRecordType(type: number): string {
  return type >= 0x21 && type < 0x7f ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`;
}
