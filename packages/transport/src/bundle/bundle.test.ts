import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  BUNDLE_ERROR_CODES,
  BUNDLE_MAGIC,
  BUNDLE_PREAMBLE_BYTES,
  BundleError,
  MAX_CHUNK_BYTES,
  RECORD_HEADER_BYTES,
  encodeBundlePreamble,
  encodeRecord,
  encodeZeroRun,
  type BundlePartTrailer,
  type BundleProducerStatus,
  type BundleRecordType,
  type BundleVersion,
} from './bundle-format.js';
import { BundleWriter } from './bundle-writer.js';
import { BundleReader, type BundleItem } from './bundle-reader.js';
import { MIN_ZERO_RUN_BYTES, ZeroRunSplitter, type PayloadSegment } from './zero-runs.js';

const OK: BundleProducerStatus = { exitCode: 0, signal: null };
const MiB = 1024 * 1024;

/** The worked example of docs/bundle.md (format 2.0): header {app: 'demo'}, a keepalive, part "db" holding "hi\\n", the trailer. */
const EXAMPLE_HEX = [
  '444b42554e444c4500020000480000000e7b22617070223a2264656d6f227d4b0000000042000000197b227061727422',
  '3a226462222c22617474656d7074223a317d440000000368690a45000000967b2270617274223a226462222c22617474',
  '656d7074223a312c226279746573223a332c22736861323536223a223938656136653466323136663266623462363966',
  '6666396233613434383432633338363836636136383566336635356463343863356433666231313037626534222c2270',
  '726f647563657245786974223a302c2270726f64756365725369676e616c223a6e756c6c7d54000000fe7b2270617274',
  '73223a5b7b2270617274223a226462222c22737461747573223a2273656e74222c226279746573223a332c2273686132',
  '3536223a2239386561366534663231366632666234623639666666396233613434383432633338363836636136383566',
  '336635356463343863356433666231313037626534222c2270726f647563657245786974223a302c2270726f64756365',
  '725369676e616c223a6e756c6c7d5d2c226279746573223a3232392c22736861323536223a2262316262313164636630',
  '383733303035663265333162356163386433373836393963643132666362656233356533616130306262666363613931',
  '643030303638227d',
].join('');

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A byte-mode Readable giving `bytes` in pieces whose sizes cycle through `sizes`; `onPiece` runs before each push. */
function piecewise(bytes: Buffer, sizes: readonly number[], onPiece?: (index: number) => void): Readable {
  let offset = 0;
  let index = 0;
  return new Readable({
    read() {
      if (offset >= bytes.length) {
        this.push(null);
        return;
      }
      onPiece?.(index);
      const size = sizes[index % sizes.length]!;
      index += 1;
      const piece = bytes.subarray(offset, offset + size);
      offset += piece.length;
      this.push(piece);
    },
  });
}

/** A sink that keeps everything written to it. */
function collector(): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

interface PartOutcome {
  readonly part: string;
  readonly attempt: number;
  data: Buffer;
  /** `data` ended normally (EOF), which must only happen for a verified part. */
  ended: boolean;
  dataError?: Error;
  trailer?: BundlePartTrailer;
  error?: BundleError;
}

interface ReadOutcome {
  readonly items: BundleItem[];
  readonly parts: PartOutcome[];
  error?: BundleError;
  readonly reader: BundleReader;
}

/** Consumes a part item's data while awaiting its `done`. */
async function consumePart(item: Extract<BundleItem, { kind: 'part' }>): Promise<PartOutcome> {
  const outcome: PartOutcome = { part: item.part, attempt: item.attempt, data: Buffer.alloc(0), ended: false };
  const chunks: Buffer[] = [];
  item.data.on('data', (chunk: Buffer) => chunks.push(chunk));
  // finished() also reports a stream that failed before we got here (raw listeners would miss it).
  const consumed = finished(item.data).then(
    () => (outcome.ended = true),
    (error: Error) => (outcome.dataError = error),
  );
  try {
    outcome.trailer = await item.done;
  } catch (error) {
    assert.ok(error instanceof BundleError, `done rejected with ${String(error)}`);
    outcome.error = error;
  }
  await consumed;
  outcome.data = Buffer.concat(chunks);
  assert.equal(
    outcome.ended,
    outcome.trailer !== undefined,
    `part ${item.part}: data must end exactly when it verified`,
  );
  return outcome;
}

/** Reads a whole bundle (a Buffer is fed in pieces of `pieceSize`). */
async function readBundle(input: Readable | Buffer, pieceSize = 65536): Promise<ReadOutcome> {
  const reader = new BundleReader(Buffer.isBuffer(input) ? piecewise(input, [pieceSize]) : input);
  const outcome: ReadOutcome = { items: [], parts: [], reader };
  for (;;) {
    let item: BundleItem;
    try {
      item = await reader.next();
    } catch (error) {
      assert.ok(error instanceof BundleError, `next() rejected with ${String(error)}`);
      outcome.error = error;
      return outcome;
    }
    outcome.items.push(item);
    if (item.kind === 'part') outcome.parts.push(await consumePart(item));
    if (item.kind === 'end' || item.kind === 'abort') return outcome;
  }
}

interface RecordAt {
  readonly type: string;
  readonly start: number;
  readonly payloadStart: number;
  readonly end: number;
}

/** Walks the records of a bundle independently of the reader (a second reading of the layout). */
function walkRecords(bundle: Buffer): RecordAt[] {
  const records: RecordAt[] = [];
  let offset = BUNDLE_PREAMBLE_BYTES;
  while (offset < bundle.length) {
    const type = String.fromCharCode(bundle[offset]!);
    const length = bundle.readUInt32BE(offset + 1);
    const record = {
      type,
      start: offset,
      payloadStart: offset + RECORD_HEADER_BYTES,
      end: offset + RECORD_HEADER_BYTES + length,
    };
    records.push(record);
    offset = record.end;
    if (type === 'T') break;
  }
  return records;
}

/**
 * The stream hash of a bundle (its bytes up to, not including, its T record) computed from the bytes
 * alone: 1.x hashes every byte; 2.x the preamble and every record except D and Z, header and payload.
 */
function streamHashOf(bundle: Buffer): string {
  const major = bundle.readUInt16BE(BUNDLE_MAGIC.length);
  const hash = createHash('sha256').update(bundle.subarray(0, BUNDLE_PREAMBLE_BYTES));
  for (const record of walkRecords(bundle)) {
    if (record.type === 'T') break;
    if (major >= 2 && (record.type === 'D' || record.type === 'Z')) continue;
    hash.update(bundle.subarray(record.start, record.end));
  }
  return hash.digest('hex');
}

/** Builds a bundle by hand from records, appending a T record made by `trailer` from the stream's size and hash. */
function buildBundle(
  records: ReadonlyArray<readonly [string, Buffer | object]>,
  options: { version?: BundleVersion; trailer?: (stream: { bytes: number; sha256: string }) => object } = {},
): Buffer {
  const buffers: Buffer[] = [encodeBundlePreamble(options.version)];
  for (const [type, payload] of records) {
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload));
    buffers.push(...encodeRecord(type as BundleRecordType, bytes));
  }
  const body = Buffer.concat(buffers);
  if (!options.trailer) return body;
  const trailer = options.trailer({ bytes: body.length, sha256: streamHashOf(body) });
  return Buffer.concat([body, ...encodeRecord('T', Buffer.from(JSON.stringify(trailer)))]);
}

/** Writes a small bundle with every record kind; returns its bytes and what went into it. */
async function smallBundle(): Promise<{ bundle: Buffer; payloads: { db: Buffer; empty: Buffer; files: Buffer } }> {
  const { sink, bytes } = collector();
  const writer = new BundleWriter(sink);
  const payloads = { db: randomBytes(3000), empty: Buffer.alloc(0), files: Buffer.from('hello bundle\n') };
  await writer.writeHeader({ format: 'dk-migrate-1', app: 'notes' });
  await writer.writeContents({ rowCounts: { notes: 2 } });
  await writer.keepalive();
  await writer.writePart('db', piecewise(payloads.db, [1000, 7, 993]), Promise.resolve(OK));
  await writer.writePart('empty', piecewise(payloads.empty, [1]), Promise.resolve(OK));
  await writer.skipPart({
    part: 'history',
    bytes: 10,
    sha256: sha256(Buffer.from('0123456789')),
    reason: 'already on the target',
  });
  await writer.writePart('files', piecewise(payloads.files, [5]), Promise.resolve(OK));
  await writer.finish();
  return { bundle: bytes(), payloads };
}

test('round trip: header, contents, parts of 0, 1, 4 MiB+1 and a few MiB in odd pieces, a skip, keepalives', async () => {
  const { sink, bytes } = collector();
  const writer = new BundleWriter(sink);
  const payloads: Record<string, Buffer> = {
    empty: Buffer.alloc(0),
    one: randomBytes(1),
    chunky: randomBytes(MAX_CHUNK_BYTES + 1),
    few: randomBytes(3 * MiB + 12345),
  };
  const pieces: Record<string, number[]> = {
    empty: [1],
    one: [1],
    chunky: [MAX_CHUNK_BYTES + 1],
    few: [1, 7, 65537, 1000003, 5 * MiB],
  };
  await writer.writeHeader({ format: 'dk-migrate-1', app: 'notes', runId: 'r1' });
  await writer.writeContents({ archive: 'notes-2026', rowCounts: { notes: 3 } });
  await writer.keepalive();
  const written: BundlePartTrailer[] = [];
  for (const part of ['empty', 'one', 'chunky'])
    written.push(await writer.writePart(part, piecewise(payloads[part]!, pieces[part]!), Promise.resolve(OK)));
  await writer.skipPart({ part: 'history', bytes: 42, sha256: sha256(Buffer.from('x')), reason: 'already there' });
  const keepalives: Promise<void>[] = [];
  // A keepalive in the middle of a part (a producer that went quiet) lands between two D records.
  const few = piecewise(payloads['few']!, pieces['few']!, (index) => {
    if (index === 3) keepalives.push(writer.keepalive());
  });
  written.push(await writer.writePart('few', few, Promise.resolve(OK)));
  await Promise.all(keepalives);
  const trailer = await writer.finish();
  const bundle = bytes();
  assert.equal(writer.bytesWritten, bundle.length);

  const records = walkRecords(bundle);
  assert.equal(records.filter((record) => record.type === 'K').length, 2);
  const tRecord = records.at(-1)!;
  assert.equal(tRecord.type, 'T');
  assert.equal(trailer.bytes, tRecord.start);
  assert.equal(trailer.sha256, streamHashOf(bundle));
  assert.ok(
    records
      .filter((record) => record.type === 'D')
      .every((record) => record.end - record.payloadStart <= MAX_CHUNK_BYTES),
  );

  for (const pieceSize of [4093, 65537, 5 * MiB + 3]) {
    const outcome = await readBundle(bundle, pieceSize);
    assert.equal(outcome.error, undefined, String(outcome.error));
    assert.deepEqual(
      outcome.items.map((item) => item.kind),
      ['header', 'contents', 'part', 'part', 'part', 'skip', 'part', 'end'],
    );
    const header = outcome.items[0] as Extract<BundleItem, { kind: 'header' }>;
    assert.deepEqual(header.version, { major: 2, minor: 0 });
    assert.equal(header.header['runId'], 'r1');
    assert.deepEqual((outcome.items[1] as Extract<BundleItem, { kind: 'contents' }>).contents['rowCounts'], {
      notes: 3,
    });
    assert.equal((outcome.items[5] as Extract<BundleItem, { kind: 'skip' }>).skip.reason, 'already there');
    for (const [index, part] of outcome.parts.entries()) {
      assert.ok(part.data.equals(payloads[part.part]!), `data of ${part.part}`);
      assert.deepEqual(part.trailer, written[index]);
      assert.equal(part.trailer?.sha256, sha256(payloads[part.part]!));
    }
    assert.deepEqual((outcome.items.at(-1) as Extract<BundleItem, { kind: 'end' }>).trailer, trailer);
    assert.equal(outcome.reader.inputBytes, bundle.length);
  }
});

test('a small bundle read one byte at a time, and two and three, verifies', async () => {
  const { bundle, payloads } = await smallBundle();
  for (const pieceSize of [1, 2, 3]) {
    const outcome = await readBundle(bundle, pieceSize);
    assert.equal(outcome.error, undefined, String(outcome.error));
    assert.deepEqual(
      outcome.parts.map((part) => [
        part.part,
        part.data.equals(payloads[part.part as keyof typeof payloads]),
        part.trailer !== undefined,
      ]),
      [
        ['db', true, true],
        ['empty', true, true],
        ['files', true, true],
      ],
    );
    assert.equal(outcome.items.at(-1)?.kind, 'end');
  }
});

test('trailing text after T is ignored, and the input is still drained to its end', async () => {
  const { bundle } = await smallBundle();
  const input = piecewise(
    Buffer.concat([bundle, Buffer.from('File transfer completed\n'), randomBytes(300000)]),
    [777],
  );
  const inputEnded = new Promise((resolve) => input.on('end', resolve));
  const outcome = await readBundle(input);
  assert.equal(outcome.error, undefined);
  assert.equal(outcome.items.at(-1)?.kind, 'end');
  await inputEnded;
  assert.equal(outcome.reader.inputBytes, bundle.length + 24 + 300000);
  assert.equal((await outcome.reader.next()).kind, 'end');
});

test('truncation at every byte of a small bundle gives BUNDLE_TRUNCATED and no verified part beyond the cut', async () => {
  const { bundle } = await smallBundle();
  const records = walkRecords(bundle);
  let partsVerified = 0;
  for (let cut = 0; cut < bundle.length; cut += 1) {
    const outcome = await readBundle(bundle.subarray(0, cut), 64);
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.truncated, `cut at ${cut}: ${String(outcome.error)}`);
    assert.match(outcome.error.message, new RegExp(`after ${cut} bytes`));
    for (const part of outcome.parts) {
      const end = records.find(
        (record) =>
          record.type === 'E' &&
          JSON.parse(bundle.subarray(record.payloadStart, record.end).toString()).part === part.part,
      )!;
      if (part.trailer) {
        partsVerified += 1;
        assert.ok(end.end <= cut, `cut at ${cut}: part ${part.part} verified although its E ends at ${end.end}`);
      } else {
        assert.ok(end.end > cut);
        assert.equal(part.error?.code, BUNDLE_ERROR_CODES.truncated);
        assert.match(outcome.error.message, new RegExp(`inside part "${part.part}"`));
      }
    }
  }
  assert.ok(partsVerified > 0);
});

test('truncation inside a large part, between records and just before T gives BUNDLE_TRUNCATED', async () => {
  const { sink, bytes } = collector();
  const writer = new BundleWriter(sink);
  await writer.writeHeader({ app: 'big' });
  const payload = randomBytes(2 * MAX_CHUNK_BYTES + 100);
  await writer.writePart('volume:data', piecewise(payload, [MAX_CHUNK_BYTES * 3]), Promise.resolve(OK));
  await writer.writePart('db', piecewise(Buffer.from('tiny'), [4]), Promise.resolve(OK));
  await writer.finish();
  const bundle = bytes();
  const records = walkRecords(bundle);
  const dRecords = records.filter((record) => record.type === 'D');
  const tRecord = records.at(-1)!;
  const cuts = [
    dRecords[0]!.payloadStart + 1,
    dRecords[1]!.payloadStart + 12345,
    dRecords[1]!.end,
    dRecords[2]!.end - 1,
    tRecord.start,
    tRecord.start + 3,
    bundle.length - 1,
  ];
  for (const cut of cuts) {
    const outcome = await readBundle(bundle.subarray(0, cut), 65536);
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.truncated, `cut at ${cut}`);
    const big = outcome.parts.find((part) => part.part === 'volume:data')!;
    if (cut < dRecords[2]!.end + 100) {
      assert.equal(big.trailer, undefined);
      assert.ok(big.dataError instanceof BundleError);
      assert.match(outcome.error.message, /inside part "volume:data"/);
    } else {
      assert.ok(big.data.equals(payload));
    }
  }
});

test('a flipped byte inside a D payload fails that part with BUNDLE_PART_MISMATCH; other parts still verify', async () => {
  const { bundle, payloads } = await smallBundle();
  const corrupt = Buffer.from(bundle);
  const firstD = walkRecords(bundle).find((record) => record.type === 'D')!;
  corrupt[firstD.payloadStart + 10]! ^= 0x20;
  const outcome = await readBundle(corrupt, 333);
  const db = outcome.parts.find((part) => part.part === 'db')!;
  assert.equal(db.error?.code, BUNDLE_ERROR_CODES.partMismatch);
  assert.match(db.error.message, /part "db" \(attempt 1\) differs from what was sent/);
  assert.ok(db.dataError, 'the consumer of the corrupt part sees an error, not EOF');
  assert.ok(outcome.parts.find((part) => part.part === 'files')?.data.equals(payloads.files));
  assert.equal(outcome.parts.find((part) => part.part === 'files')?.trailer?.bytes, payloads.files.length);
  // The whole-stream hash covers the flipped byte too, so the bundle as a whole never verifies.
  assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.streamMismatch);
});

test('a flipped byte anywhere in an E record JSON gives GARBAGE or a mismatch, never a verified part', async () => {
  const { bundle } = await smallBundle();
  const end = walkRecords(bundle).find((record) => record.type === 'E')!;
  const codes = new Set<string>();
  for (let position = end.payloadStart; position < end.end; position += 1) {
    const corrupt = Buffer.from(bundle);
    corrupt[position]! ^= 0x01;
    const outcome = await readBundle(corrupt, 4096);
    const code = outcome.error?.code;
    assert.ok(
      code === BUNDLE_ERROR_CODES.garbage || code === BUNDLE_ERROR_CODES.streamMismatch,
      `byte ${position}: ${String(outcome.error)}`,
    );
    const db = outcome.parts.find((part) => part.part === 'db')!;
    assert.equal(db.trailer, undefined, `byte ${position}: part verified`);
    codes.add(code);
    if (db.error) codes.add(db.error.code);
  }
  assert.ok(codes.has(BUNDLE_ERROR_CODES.garbage) && codes.has(BUNDLE_ERROR_CODES.partMismatch), [...codes].join(', '));
});

test('an unknown major version (0, 3) fails with BUNDLE_VERSION_UNSUPPORTED naming the versions', async () => {
  for (const major of [3, 0]) {
    const bundle = buildBundle([['H', { app: 'x' }]], { version: { major, minor: 1 } });
    const outcome = await readBundle(bundle);
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.versionUnsupported);
    assert.equal(
      outcome.error.message,
      `this bundle is format ${major}.1; this deploy reads formats 1.x and 2.x: install a deploykit that reads format ${major} on this host`,
    );
    assert.equal(outcome.items.length, 0);
  }
});

test('a newer minor version with unknown JSON fields is read', async () => {
  const data = Buffer.from('payload of a newer writer');
  const part = {
    part: 'db',
    attempt: 1,
    bytes: data.length,
    sha256: sha256(data),
    producerExit: 0,
    producerSignal: null,
    compression: 'none',
  };
  const bundle = buildBundle(
    [
      ['H', { app: 'x', futureField: [1, 2] }],
      ['B', { part: 'db', attempt: 1, priority: 'high' }],
      ['D', data],
      ['E', part],
    ],
    {
      version: { major: 1, minor: 7 },
      trailer: (stream) => ({ ...stream, parts: [{ ...part, status: 'sent', extra: true }], signedBy: 'someone' }),
    },
  );
  const outcome = await readBundle(bundle, 5);
  assert.equal(outcome.error, undefined, String(outcome.error));
  assert.deepEqual((outcome.items[0] as Extract<BundleItem, { kind: 'header' }>).version, { major: 1, minor: 7 });
  assert.ok(outcome.parts[0]?.data.equals(data));
  assert.equal(outcome.items.at(-1)?.kind, 'end');
});

test('a failed producer then a retried part (attempt 2) is accepted; the trailer lists attempt 2 only', async () => {
  const { sink, bytes } = collector();
  const writer = new BundleWriter(sink);
  await writer.writeHeader({ app: 'x' });
  const partial = Buffer.from('half a dump');
  const full = randomBytes(70000);
  const failed = await writer.writePart(
    'db',
    piecewise(partial, [4]),
    Promise.resolve({ exitCode: 3, signal: null, stderrTail: 'pg_dump: error: connection lost\n' }),
  );
  assert.equal(failed.producerExit, 3);
  const retried = await writer.writePart('db', piecewise(full, [8192]), Promise.resolve(OK));
  assert.equal(retried.attempt, 2);
  const trailer = await writer.finish();
  assert.deepEqual(trailer.parts, [
    { part: 'db', status: 'sent', bytes: full.length, sha256: sha256(full), producerExit: 0, producerSignal: null },
  ]);

  const outcome = await readBundle(bytes(), 1000);
  assert.equal(outcome.error, undefined, String(outcome.error));
  assert.deepEqual(
    outcome.parts.map((part) => [part.attempt, part.error?.code ?? 'ok']),
    [
      [1, BUNDLE_ERROR_CODES.producerFailed],
      [2, 'ok'],
    ],
  );
  assert.match(outcome.parts[0]!.error!.message, /exited with code 3.*connection lost/);
  assert.ok(outcome.parts[1]!.data.equals(full));
  assert.deepEqual((outcome.items.at(-1) as Extract<BundleItem, { kind: 'end' }>).trailer, trailer);
});

test('an abort in the middle of a part yields an abort item; the part is abandoned on both sides', async () => {
  const transport = new PassThrough();
  const writer = new BundleWriter(transport);
  const source = new PassThrough();
  await writer.writeHeader({ app: 'x' });
  const writing = writer.writePart('volume:uploads', source, new Promise(() => undefined));
  source.write(randomBytes(100000));
  const reader = new BundleReader(transport);
  assert.equal((await reader.next()).kind, 'header');
  const item = await reader.next();
  assert.equal(item.kind, 'part');
  const consumed = consumePart(item as Extract<BundleItem, { kind: 'part' }>);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(writer.partBytes, 100000);
  await writer.abort({ code: 'INTERRUPTED', reason: 'the operator pressed Ctrl-C' });
  await assert.rejects(writing, (error: BundleError) => error.code === BUNDLE_ERROR_CODES.aborted);
  const abort = await reader.next();
  assert.deepEqual(abort, { kind: 'abort', abort: { code: 'INTERRUPTED', reason: 'the operator pressed Ctrl-C' } });
  const part = await consumed;
  assert.equal(part.error?.code, BUNDLE_ERROR_CODES.aborted);
  assert.match(part.error.message, /aborted the bundle inside part "volume:uploads".*Ctrl-C/);
  assert.ok(part.dataError);
  assert.equal(part.data.length, 100000);
  assert.deepEqual(await reader.next(), abort);
  await assert.rejects(writer.finish(), /after the bundle was aborted/);
});

test("backpressure: a slow consumer pauses the input and the writer's source; bytes in flight stay bounded", async () => {
  const payload = randomBytes(16 * MiB);
  let sourcePausedSeen = false;
  const source = piecewise(payload, [65536]);
  const transport = new PassThrough();
  const writer = new BundleWriter(transport);
  const reader = new BundleReader(transport);
  await writer.writeHeader({ app: 'x' });
  const writing = writer.writePart('db', source, Promise.resolve(OK)).then(() => writer.finish());
  assert.equal((await reader.next()).kind, 'header');
  const item = (await reader.next()) as Extract<BundleItem, { kind: 'part' }>;
  let received = 0;
  let maxInFlight = 0;
  let maxReaderBuffered = 0;
  let inputPauses = 0;
  transport.on('pause', () => (inputPauses += 1));
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    const slow = new Writable({
      highWaterMark: 65536,
      write(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        hash.update(chunk);
        maxInFlight = Math.max(maxInFlight, writer.bytesWritten - received);
        maxReaderBuffered = Math.max(maxReaderBuffered, transport.readableLength + item.data.readableLength);
        sourcePausedSeen ||= source.isPaused();
        // Slow only for a while, so the test stays quick.
        if (received < 4 * MiB) setTimeout(callback, 1);
        else callback();
      },
    });
    item.data.pipe(slow).on('finish', resolve).on('error', reject);
  });
  assert.equal((await item.done).sha256, sha256(payload));
  assert.equal(hash.digest('hex'), sha256(payload));
  assert.equal((await reader.next()).kind, 'end');
  await writing;
  assert.ok(inputPauses > 0, 'the reader paused its input');
  assert.ok(sourcePausedSeen, 'the writer paused its source');
  assert.ok(maxReaderBuffered < 1 * MiB, `reader buffered up to ${maxReaderBuffered} bytes`);
  assert.ok(maxInFlight < 2 * MiB, `up to ${maxInFlight} bytes were in flight`);
});

test('a 64 MiB part streams with bounded memory', async () => {
  // A real GC before each sample, so the numbers are what is still referenced, not garbage not yet collected.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const liveArrayBuffers = async (): Promise<number> => {
    for (let round = 0; round < 2; round += 1) {
      gc();
      await setImmediatePromise();
    }
    return process.memoryUsage().arrayBuffers;
  };
  const total = 64 * MiB;
  const block = randomBytes(65536);
  let produced = 0;
  // Fresh buffers per chunk, so anything that kept the part would show in arrayBuffers.
  const source = new Readable({
    read() {
      if (produced >= total) return this.push(null);
      const chunk = Buffer.allocUnsafe(65536);
      block.copy(chunk);
      chunk.writeUInt32BE(produced / 65536, 0);
      produced += chunk.length;
      this.push(chunk);
    },
  });
  const transport = new PassThrough();
  const writer = new BundleWriter(transport);
  const reader = new BundleReader(transport);
  await writer.writeHeader({ app: 'x' });
  const writing = writer.writePart('volume:data', source, Promise.resolve(OK)).then(() => writer.finish());
  await reader.next();
  const item = (await reader.next()) as Extract<BundleItem, { kind: 'part' }>;
  const baseline = await liveArrayBuffers();
  let peak = 0;
  let received = 0;
  let maxInFlight = 0;
  let nextSample = 8 * MiB;
  const hash = createHash('sha256');
  for await (const chunk of item.data as AsyncIterable<Buffer>) {
    received += chunk.length;
    hash.update(chunk);
    maxInFlight = Math.max(maxInFlight, writer.bytesWritten - received);
    if (received >= nextSample) {
      nextSample += 8 * MiB;
      peak = Math.max(peak, (await liveArrayBuffers()) - baseline);
    }
  }
  const trailer = await item.done;
  assert.equal(trailer.bytes, total);
  assert.equal(trailer.sha256, hash.digest('hex'));
  assert.equal((await reader.next()).kind, 'end');
  await writing;
  assert.ok(maxInFlight < 2 * MiB, `up to ${maxInFlight} bytes were in flight`);
  assert.ok(peak < 16 * MiB, `up to ${peak} bytes of buffers stayed referenced while streaming`);
});

test('input that is not a bundle fails with BUNDLE_BAD_MAGIC showing its first bytes', async () => {
  const banner = await readBundle(Buffer.from('bash: deploy: command not found\n'));
  assert.equal(banner.error?.code, BUNDLE_ERROR_CODES.badMagic);
  assert.match(banner.error.message, /"bash: deploy: command not found\\n"/);
  const gzip = await readBundle(Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x44]));
  assert.equal(gzip.error?.code, BUNDLE_ERROR_CODES.badMagic);
  assert.match(gzip.error.message, /"\\x1f\\x8b/);
  const close = await readBundle(Buffer.concat([Buffer.from('DKBUNDLX'), encodeBundlePreamble().subarray(8)]));
  assert.equal(close.error?.code, BUNDLE_ERROR_CODES.badMagic);
});

test('records out of order, bad lengths and bad JSON fail with BUNDLE_GARBAGE', async () => {
  const data = Buffer.from('abc');
  const ok = { part: 'db', attempt: 1, bytes: 3, sha256: sha256(data), producerExit: 0, producerSignal: null };
  const H = ['H', { app: 'x' }] as const;
  const cases: Record<string, ReadonlyArray<readonly [string, Buffer | object]>> = {
    'unknown record type': [H, ['Z', { x: 1 }]],
    'H not first': [['C', {}], H],
    'K before H': [['K', Buffer.alloc(0)], H],
    'a second H': [H, H],
    'H is not an object': [['H', [1, 2]]],
    'H is not JSON': [['H', Buffer.from('{app:')]],
    'H is not UTF-8': [['H', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])]],
    'D outside a part': [H, ['D', data]],
    'empty D': [H, ['B', { part: 'db', attempt: 1 }], ['D', Buffer.alloc(0)]],
    'B inside a part': [H, ['B', { part: 'db', attempt: 1 }], ['B', { part: 'files', attempt: 1 }]],
    'B with attempt 0': [H, ['B', { part: 'db', attempt: 0 }]],
    'B with attempt 2 first': [H, ['B', { part: 'db', attempt: 2 }]],
    'B with an empty part id': [H, ['B', { part: '', attempt: 1 }]],
    'E without a part': [H, ['E', ok]],
    'E for another part': [H, ['B', { part: 'files', attempt: 1 }], ['D', data], ['E', ok]],
    'E with a bad sha256': [H, ['B', { part: 'db', attempt: 1 }], ['D', data], ['E', { ...ok, sha256: 'xyz' }]],
    'a part sent again after success': [
      H,
      ['B', { part: 'db', attempt: 1 }],
      ['D', data],
      ['E', ok],
      ['B', { part: 'db', attempt: 2 }],
    ],
    'C after a part': [H, ['S', { part: 'db', bytes: 1, sha256: ok.sha256, reason: 'r' }], ['C', {}]],
    'S after the part was sent': [
      H,
      ['B', { part: 'db', attempt: 1 }],
      ['D', data],
      ['E', ok],
      ['S', { part: 'db', bytes: 3, sha256: ok.sha256, reason: 'r' }],
    ],
    'K with a payload': [H, ['K', Buffer.from('x')]],
    'T inside a part': [H, ['B', { part: 'db', attempt: 1 }], ['T', { parts: [], bytes: 0, sha256: ok.sha256 }]],
    'A without a reason': [H, ['A', { code: 'X' }]],
  };
  for (const [name, records] of Object.entries(cases)) {
    const outcome = await readBundle(buildBundle(records), 7);
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.garbage, `${name}: ${String(outcome.error)}`);
  }
  const recordHeader = (type: string, length: number): Buffer => {
    const bytes = Buffer.alloc(RECORD_HEADER_BYTES);
    bytes[0] = type.charCodeAt(0);
    bytes.writeUInt32BE(length, 1);
    return bytes;
  };
  const tooLongD = await readBundle(
    Buffer.concat([buildBundle([H, ['B', { part: 'db', attempt: 1 }]]), recordHeader('D', MAX_CHUNK_BYTES + 1)]),
  );
  assert.equal(tooLongD.error?.code, BUNDLE_ERROR_CODES.garbage);
  assert.match(tooLongD.error.message, /D record of 4194305 bytes/);
  const tooLongJson = await readBundle(
    Buffer.concat([buildBundle([H]), recordHeader('C', 0xffffffff), randomBytes(100000)]),
  );
  assert.equal(tooLongJson.error?.code, BUNDLE_ERROR_CODES.garbage);
  assert.ok(
    tooLongJson.reader.inputBytes <= 65536,
    'an absurd length fails on its first input chunk, before any payload is buffered',
  );
});

test('a T record that differs from the bundle fails with BUNDLE_STREAM_MISMATCH', async () => {
  const data = Buffer.from('abc');
  const end = { part: 'db', attempt: 1, bytes: 3, sha256: sha256(data), producerExit: 0, producerSignal: null };
  const entry = { part: 'db', status: 'sent', bytes: 3, sha256: sha256(data), producerExit: 0, producerSignal: null };
  const records = [
    ['H', { app: 'x' }],
    ['B', { part: 'db', attempt: 1 }],
    ['D', data],
    ['E', end],
  ] as const;
  const variants: Record<string, (stream: { bytes: number; sha256: string }) => object> = {
    'byte count': (stream) => ({ ...stream, bytes: stream.bytes + 1, parts: [entry] }),
    'stream hash': (stream) => ({ ...stream, sha256: sha256(Buffer.from('other')), parts: [entry] }),
    'missing part': (stream) => ({ ...stream, parts: [] }),
    'extra part': (stream) => ({ ...stream, parts: [entry, { ...entry, part: 'files' }] }),
    'part hash': (stream) => ({ ...stream, parts: [{ ...entry, sha256: sha256(Buffer.from('abd')) }] }),
    'part status': (stream) => ({ ...stream, parts: [{ ...entry, status: 'skipped' }] }),
    'part size': (stream) => ({ ...stream, parts: [{ ...entry, bytes: 4 }] }),
  };
  assert.equal(
    (await readBundle(buildBundle(records, { trailer: (stream) => ({ ...stream, parts: [entry] }) }))).error,
    undefined,
  );
  for (const [name, trailer] of Object.entries(variants)) {
    const outcome = await readBundle(buildBundle(records, { trailer }));
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.streamMismatch, name);
    assert.ok(outcome.parts[0]?.trailer, `${name}: the part itself still verified`);
  }
});

test('the writer refuses calls out of order', async () => {
  const { sink } = collector();
  const writer = new BundleWriter(sink);
  await assert.rejects(writer.keepalive(), /before writeHeader/);
  await assert.rejects(writer.finish(), /before writeHeader/);
  await writer.writeHeader({});
  await assert.rejects(writer.writeHeader({}), /twice/);
  const source = new PassThrough();
  const writing = writer.writePart('db', source, Promise.resolve(OK));
  await assert.rejects(writer.finish(), /while part "db" is open/);
  await assert.rejects(
    writer.skipPart({ part: 'x', bytes: 0, sha256: sha256(Buffer.alloc(0)), reason: '' }),
    /while part "db" is open/,
  );
  await writer.keepalive();
  source.end(Buffer.from('x'));
  await writing;
  await assert.rejects(writer.writeContents({}), /after the first part/);
  await assert.rejects(
    writer.writePart('db', piecewise(Buffer.from('y'), [1]), Promise.resolve(OK)),
    /already sent successfully/,
  );
  await writer.finish();
  await assert.rejects(writer.keepalive(), /after the bundle was finished/);
});

test('a sink that closes in the middle of a part fails writePart with BUNDLE_SINK_CLOSED', async () => {
  const transport = new PassThrough();
  const writer = new BundleWriter(transport);
  await writer.writeHeader({});
  const source = new PassThrough();
  const writing = writer.writePart('db', source, Promise.resolve(OK));
  source.write(randomBytes(1000));
  transport.destroy();
  await assert.rejects(writing, (error: BundleError) => error.code === BUNDLE_ERROR_CODES.sinkClosed);
  assert.ok(source.isPaused(), 'the source is left paused, not drained into nothing');
  await assert.rejects(writer.keepalive(), /closed after/);
});

test('reader.destroy() fails the open part, a pending next() and the input', async () => {
  const { bundle } = await smallBundle();
  const firstD = walkRecords(bundle).find((record) => record.type === 'D')!;
  const input = new PassThrough();
  input.write(bundle.subarray(0, firstD.payloadStart + 10));
  const reader = new BundleReader(input);
  await reader.next();
  await reader.next();
  const item = (await reader.next()) as Extract<BundleItem, { kind: 'part' }>;
  item.data.resume();
  const failure = new Error('the consumer failed');
  const pending = reader.next();
  reader.destroy(failure);
  await assert.rejects(item.done, failure);
  await assert.rejects(pending, failure);
  assert.ok(input.destroyed);
  assert.ok(item.data.destroyed);
});

test('lastByteAt and inputBytes follow the input, keepalives included', async () => {
  const input = new PassThrough();
  const before = Date.now();
  const reader = new BundleReader(input);
  input.write(buildBundle([['H', {}]]));
  assert.equal((await reader.next()).kind, 'header');
  await new Promise((resolve) => setTimeout(resolve, 30));
  const stamp = reader.lastByteAt;
  assert.ok(stamp >= before);
  const pending = reader.next();
  input.write(Buffer.concat(encodeRecord('K', Buffer.alloc(0))));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(reader.lastByteAt >= stamp + 25, 'a keepalive moves lastByteAt');
  assert.equal(reader.inputBytes, BUNDLE_MAGIC.length + 4 + 5 + 2 + 5);
  input.end();
  await assert.rejects(
    pending,
    (error: BundleError) => error.code === BUNDLE_ERROR_CODES.truncated && /between records/.test(error.message),
  );
});

test('the worked example of docs/bundle.md is what the writer writes, byte for byte, and reads back', async () => {
  const { sink, bytes } = collector();
  const writer = new BundleWriter(sink);
  await writer.writeHeader({ app: 'demo' });
  await writer.keepalive();
  await writer.writePart('db', piecewise(Buffer.from('hi\n'), [3]), Promise.resolve(OK));
  const trailer = await writer.finish();
  assert.equal(bytes().toString('hex'), EXAMPLE_HEX);
  assert.equal(trailer.bytes, 229);
  // The stream hash of 2.0: bytes 0..65 (preamble, H, K, B) and 74..228 (E); the D record at 66..73 is left out.
  const example = Buffer.from(EXAMPLE_HEX, 'hex');
  assert.equal(trailer.sha256, sha256(Buffer.concat([example.subarray(0, 66), example.subarray(74, 229)])));
  assert.equal(trailer.sha256, 'b1bb11dcf0873005f2e31b5ac8d378699cd12fcbeb35e3aa00bbfcca91d00068');
  const outcome = await readBundle(Buffer.from(EXAMPLE_HEX, 'hex'), 1);
  assert.equal(outcome.error, undefined);
  assert.equal(outcome.parts[0]?.data.toString(), 'hi\n');
});

test('an input that fails mid-part gives BUNDLE_TRUNCATED with the cause, after the bytes received before it', async () => {
  const { bundle } = await smallBundle();
  const firstD = walkRecords(bundle).find((record) => record.type === 'D')!;
  const input = new PassThrough();
  input.write(bundle.subarray(0, firstD.payloadStart + 100));
  const reader = new BundleReader(input);
  const items = [await reader.next(), await reader.next(), await reader.next()];
  assert.deepEqual(
    items.map((item) => item.kind),
    ['header', 'contents', 'part'],
  );
  const part = consumePart(items[2] as Extract<BundleItem, { kind: 'part' }>);
  await new Promise((resolve) => setTimeout(resolve, 10));
  input.destroy(new Error('read ECONNRESET'));
  const outcome = await part;
  assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.truncated);
  assert.match(
    outcome.error.message,
    /the input failed \(read ECONNRESET\) after \d+ bytes of the bundle, inside part "db" \(attempt 1, 100 bytes of it received\)/,
  );
  assert.equal(outcome.data.length, 100);
  await assert.rejects(reader.next(), (error: BundleError) => error.code === BUNDLE_ERROR_CODES.truncated);
});

test("a consumer that destroys a part's data lets the reader skip the rest of it and go on", async () => {
  const { bundle, payloads } = await smallBundle();
  const reader = new BundleReader(piecewise(bundle, [100]));
  const kinds: string[] = [];
  let files: Buffer | undefined;
  for (;;) {
    const item = await reader.next();
    kinds.push(item.kind);
    if (item.kind === 'part' && item.part === 'db') {
      item.data.destroy();
      assert.equal((await item.done).bytes, payloads.db.length, 'the skipped rest is still verified');
    } else if (item.kind === 'part') {
      const outcome = await consumePart(item);
      if (item.part === 'files') files = outcome.data;
    }
    if (item.kind === 'end') break;
  }
  assert.deepEqual(kinds, ['header', 'contents', 'part', 'part', 'skip', 'part', 'end']);
  assert.ok(files?.equals(payloads.files));
});

/** A tar-like payload with holes: data, zero runs of many lengths and alignments, data again. */
function sparsePayload(): Buffer {
  return Buffer.concat([
    randomBytes(1000),
    Buffer.alloc(300), // a short zero run, not block-aligned
    randomBytes(212),
    Buffer.alloc(8 * MiB), // a hole: starts at offset 1512, so the Z run starts at the next block (1536)
    randomBytes(700),
    Buffer.alloc(MIN_ZERO_RUN_BYTES - 512), // one block short of a Z run
    Buffer.from([1]),
    Buffer.alloc(MIN_ZERO_RUN_BYTES + 3000),
    randomBytes(4 * MiB + 17),
    Buffer.alloc(3 * MiB + 100), // the payload ends inside a zero block
  ]);
}

/** Expands splitter segments back into bytes. */
function expand(segments: readonly PayloadSegment[]): Buffer {
  return Buffer.concat(segments.map((segment) => (Buffer.isBuffer(segment) ? segment : Buffer.alloc(segment.zeros))));
}

test('zero runs: the splitter gives back exactly its input, whole aligned zero runs of >= 64 KiB as counts, whatever the chunking', () => {
  const payload = sparsePayload();
  for (const sizes of [[payload.length], [1], [511, 513], [65536], [4093, 1, 100000, 7]]) {
    if (sizes[0] === 1 && sizes.length === 1) {
      // One byte at a time over 16 MiB is slow in a unit test: a 200 KiB slice shows the same.
      const slice = Buffer.concat([randomBytes(10), Buffer.alloc(150 * 1024), randomBytes(10)]);
      const splitter = new ZeroRunSplitter();
      const segments: PayloadSegment[] = [];
      for (let offset = 0; offset < slice.length; offset += 1)
        segments.push(...splitter.push(slice.subarray(offset, offset + 1)));
      segments.push(...splitter.end());
      assert.ok(expand(segments).equals(slice));
      assert.deepEqual(
        segments.filter((segment) => !Buffer.isBuffer(segment)),
        [{ zeros: 150 * 1024 - 512 }],
      );
      continue;
    }
    const splitter = new ZeroRunSplitter();
    const segments: PayloadSegment[] = [];
    let index = 0;
    for (let offset = 0; offset < payload.length; index += 1) {
      const size = sizes[index % sizes.length]!;
      segments.push(...splitter.push(payload.subarray(offset, offset + size)));
      offset += size;
    }
    segments.push(...splitter.end());
    assert.ok(expand(segments).equals(payload), `chunks ${sizes.join(',')}: the output differs from the input`);
    const runs = segments
      .filter((segment): segment is { zeros: number } => !Buffer.isBuffer(segment))
      .map((segment) => segment.zeros);
    // 8 MiB hole from 1512: blocks from 1536 to 1512 + 8 MiB rounded down; then MIN+3000 from an odd offset; the tail.
    assert.equal(runs.length, 3, `chunks ${sizes.join(',')}: runs ${runs.join(',')}`);
    assert.ok(
      runs[0]! >= 8 * MiB - 1024 && runs[1]! >= MIN_ZERO_RUN_BYTES && runs[2]! >= 3 * MiB - 512,
      runs.join(','),
    );
    assert.ok(runs.every((run) => run % 512 === 0));
    const bytes = segments.filter(Buffer.isBuffer).reduce((sum, piece) => sum + piece.length, 0);
    assert.ok(bytes < 4 * MiB + 200 * 1024, `${bytes} bytes left as data`);
  }
});

test('zero runs: a sparse payload costs about its data on the wire and reads back byte for byte, hashed over the real bytes', async () => {
  const payload = sparsePayload();
  const { sink, bytes } = collector();
  const writer = new BundleWriter(sink);
  await writer.writeHeader({ app: 'x' });
  const trailer = await writer.writePart('volume:data', piecewise(payload, [65536, 4093]), Promise.resolve(OK));
  assert.equal(trailer.bytes, payload.length);
  assert.equal(trailer.sha256, sha256(payload));
  assert.ok(
    writer.lastPartWireBytes < 4 * MiB + 250 * 1024,
    `the part took ${writer.lastPartWireBytes} bytes of the bundle for ${payload.length} bytes of payload`,
  );
  await writer.finish();
  const bundle = bytes();
  const records = walkRecords(bundle);
  assert.equal(records.filter((record) => record.type === 'Z').length, 3);
  assert.ok(records.filter((record) => record.type === 'Z').every((record) => record.end - record.payloadStart === 8));
  // Odd piece sizes split Z headers and counts across input chunks.
  for (const pieceSize of [509, 4093, 65536]) {
    const outcome = await readBundle(bundle, pieceSize);
    assert.equal(outcome.error, undefined, String(outcome.error));
    assert.ok(outcome.parts[0]!.data.equals(payload), `pieces of ${pieceSize}: the payload read back differs`);
    assert.equal(outcome.parts[0]!.trailer?.sha256, sha256(payload));
  }
});

test('zero runs: a corrupted or cut Z record never yields a verified part', async () => {
  const payload = Buffer.concat([randomBytes(600), Buffer.alloc(MiB), randomBytes(600)]);
  const { sink, bytes } = collector();
  const writer = new BundleWriter(sink);
  await writer.writeHeader({ app: 'x' });
  await writer.writePart('volume:data', piecewise(payload, [65536]), Promise.resolve(OK));
  await writer.finish();
  const bundle = bytes();
  const z = walkRecords(bundle).find((record) => record.type === 'Z')!;
  assert.ok(z, 'the writer sent the zero run as a Z record');
  // A count changed by one (more zeros, fewer zeros): the part's size and hash differ, then the stream's.
  for (const delta of [1, -1, 512]) {
    const corrupt = Buffer.from(bundle);
    corrupt.writeBigUInt64BE(corrupt.readBigUInt64BE(z.payloadStart) + BigInt(delta), z.payloadStart);
    const outcome = await readBundle(corrupt, 4096);
    assert.equal(outcome.parts[0]?.error?.code, BUNDLE_ERROR_CODES.partMismatch, `delta ${delta}`);
    assert.equal(outcome.parts[0]?.trailer, undefined);
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.streamMismatch, `delta ${delta}`);
  }
  // Cut inside the Z header, inside its count, right after it: truncated, the part unused.
  for (const cut of [z.start + 2, z.payloadStart + 3, z.end]) {
    const outcome = await readBundle(bundle.subarray(0, cut), 4096);
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.truncated, `cut at ${cut}`);
    assert.match(outcome.error.message, /inside part "volume:data"/);
    assert.equal(outcome.parts[0]?.trailer, undefined);
  }
  // Malformed Z records: zero count, a count past 2^53, a wrong length, outside a part, in a 1.0 bundle.
  const begin = ['B', { part: 'p', attempt: 1 }] as const;
  const big = Buffer.alloc(8);
  big.writeBigUInt64BE(2n ** 53n);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['zero count', buildBundle([['H', {}], begin, ['Z', Buffer.alloc(8)]]), /Z record of 0 zero bytes/],
    ['huge count', buildBundle([['H', {}], begin, ['Z', big]]), /Z record of 9007199254740992 zero bytes/],
    ['short payload', buildBundle([['H', {}], begin, ['Z', Buffer.alloc(7)]]), /Z record of 7 bytes \(must be 8\)/],
    [
      'outside a part',
      buildBundle([
        ['H', {}],
        ['Z', encodeZeroRun(MiB)],
      ]),
      /Z record outside a part/,
    ],
    [
      'in a 1.0 bundle',
      buildBundle([['H', {}], begin, ['Z', encodeZeroRun(MiB)]], { version: { major: 1, minor: 0 } }),
      /Z record in a bundle of format 1\.0/,
    ],
  ];
  for (const [name, bundleBytes, message] of cases) {
    const outcome = await readBundle(bundleBytes);
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.garbage, name);
    assert.match(outcome.error.message, message, name);
  }
});

test('a record type of a newer minor version fails with BUNDLE_VERSION_UNSUPPORTED naming both versions; major 1 without zeroRuns writes 1.0', async () => {
  const newer2 = await readBundle(
    buildBundle(
      [
        ['H', {}],
        ['B', { part: 'p', attempt: 1 }],
        ['Q' as BundleRecordType, Buffer.from('x')],
      ],
      { version: { major: 2, minor: 3 } },
    ),
  );
  assert.equal(newer2.error?.code, BUNDLE_ERROR_CODES.versionUnsupported);
  assert.match(
    newer2.error.message,
    /format 2\.3 and uses record type 'Q', which this deploy \(format 2\.0\) does not know/,
  );
  const outcome = await readBundle(
    buildBundle(
      [
        ['H', {}],
        ['B', { part: 'p', attempt: 1 }],
        ['Q' as BundleRecordType, Buffer.from('x')],
      ],
      { version: { major: 1, minor: 2 } },
    ),
  );
  assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.versionUnsupported);
  assert.match(
    outcome.error.message,
    /this bundle is format 1\.2 and uses record type 'Q', which this deploy \(format 1\.1\) does not know/,
  );
  const { sink, bytes } = collector();
  const writer = new BundleWriter(sink, { major: 1, zeroRuns: false });
  await writer.writeHeader({});
  const payload = Buffer.alloc(2 * MiB);
  await writer.writePart('p', piecewise(payload, [65536]), Promise.resolve(OK));
  await writer.finish();
  assert.equal(bytes().readUInt16BE(8), 1, 'major version 1');
  assert.equal(bytes().readUInt16BE(10), 0, 'minor version 0');
  assert.ok(!walkRecords(bytes()).some((record) => record.type === 'Z'));
  const read = await readBundle(bytes());
  assert.equal(read.error, undefined);
  assert.ok(read.parts[0]!.data.equals(payload));
});

/** A bundle with two parts (one sparse, so it has Z records), a skip and a keepalive, written with `options`. */
async function mixedBundle(
  options: { major?: 1 | 2 } = {},
): Promise<{ bundle: Buffer; trailer: Awaited<ReturnType<BundleWriter['finish']>>; payloads: Buffer[] }> {
  const { sink, bytes } = collector();
  const writer = new BundleWriter(sink, options);
  const payloads = [randomBytes(3 * MiB + 5), Buffer.concat([randomBytes(700), Buffer.alloc(MiB), randomBytes(900)])];
  await writer.writeHeader({ app: 'x' });
  await writer.writeContents({ rowCounts: {} });
  await writer.writePart('volume:a', piecewise(payloads[0]!, [65536, 1000003]), Promise.resolve(OK));
  await writer.keepalive();
  await writer.skipPart({ part: 'db', bytes: 1, sha256: sha256(Buffer.from('x')), reason: 'held' });
  await writer.writePart('volume:sparse', piecewise(payloads[1]!, [65536]), Promise.resolve(OK));
  const trailer = await writer.finish();
  return { bundle: bytes(), trailer, payloads };
}

test('2.0: the stream hash covers exactly the preamble and the control records (H, C, B, E, S, K), no D or Z record', async () => {
  const { bundle, trailer, payloads } = await mixedBundle();
  assert.deepEqual([bundle.readUInt16BE(8), bundle.readUInt16BE(10)], [2, 0]);
  const records = walkRecords(bundle);
  assert.ok(records.some((record) => record.type === 'Z') && records.some((record) => record.type === 'D'));
  const tRecord = records.at(-1)!;
  // Independently of the writer and of streamHashOf: concatenate the control records' bytes and hash them.
  const control = Buffer.concat([
    bundle.subarray(0, BUNDLE_PREAMBLE_BYTES),
    ...records
      .filter((record) => 'HCBESKA'.includes(record.type))
      .map((record) => bundle.subarray(record.start, record.end)),
  ]);
  assert.equal(trailer.sha256, sha256(control));
  assert.notEqual(trailer.sha256, sha256(bundle.subarray(0, tRecord.start)), 'the payload records are not hashed');
  // T.bytes is still the T record's offset: every byte before it, D and Z records included.
  assert.equal(trailer.bytes, tRecord.start);
  const outcome = await readBundle(bundle, 65537);
  assert.equal(outcome.error, undefined, String(outcome.error));
  assert.deepEqual((outcome.items[0] as Extract<BundleItem, { kind: 'header' }>).version, { major: 2, minor: 0 });
  assert.ok(outcome.parts[0]!.data.equals(payloads[0]!));
  assert.ok(outcome.parts[1]!.data.equals(payloads[1]!));
  assert.deepEqual((outcome.items.at(-1) as Extract<BundleItem, { kind: 'end' }>).trailer, trailer);
  // A T record whose sha256 is over every byte (the 1.x rule) does not verify a 2.0 bundle.
  const oneRule = buildBundle([['H', {}]], {
    trailer: (stream) => ({ ...stream, sha256: sha256(encodeBundlePreamble()), parts: [] }),
  });
  assert.equal((await readBundle(oneRule)).error?.code, BUNDLE_ERROR_CODES.streamMismatch);
});

test('1.1: a bundle written with major 1 hashes every byte before T and still reads', async () => {
  const { bundle, trailer, payloads } = await mixedBundle({ major: 1 });
  assert.deepEqual([bundle.readUInt16BE(8), bundle.readUInt16BE(10)], [1, 1]);
  const tRecord = walkRecords(bundle).at(-1)!;
  assert.ok(
    walkRecords(bundle).some((record) => record.type === 'Z'),
    '1.1 has Z records',
  );
  assert.equal(trailer.sha256, sha256(bundle.subarray(0, tRecord.start)));
  for (const pieceSize of [4093, 65536]) {
    const outcome = await readBundle(bundle, pieceSize);
    assert.equal(outcome.error, undefined, String(outcome.error));
    assert.deepEqual((outcome.items[0] as Extract<BundleItem, { kind: 'header' }>).version, { major: 1, minor: 1 });
    assert.ok(outcome.parts[0]!.data.equals(payloads[0]!));
    assert.ok(outcome.parts[1]!.data.equals(payloads[1]!));
  }
  // Under 1.x a flipped D byte also changes the stream hash itself.
  const corrupt = Buffer.from(bundle);
  corrupt[walkRecords(bundle).find((record) => record.type === 'D')!.payloadStart + 7]! ^= 0x01;
  const outcome = await readBundle(corrupt);
  assert.equal(outcome.parts[0]?.error?.code, BUNDLE_ERROR_CODES.partMismatch);
  assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.streamMismatch);
  assert.match(outcome.error.message, /before the T record/);
});

test('2.0: a flipped byte in a D payload or in a Z count fails that part (PART_MISMATCH) and the bundle at T (STREAM_MISMATCH)', async () => {
  const { bundle } = await mixedBundle();
  const records = walkRecords(bundle);
  const dRecords = records.filter((record) => record.type === 'D');
  const z = records.find((record) => record.type === 'Z')!;
  const flips: Array<[string, number, string]> = [
    ['first D of volume:a', dRecords[0]!.payloadStart + 10, 'volume:a'],
    ['last byte of a D of volume:a', dRecords[1]!.end - 1, 'volume:a'],
    ['low byte of the Z count', z.end - 1, 'volume:sparse'],
    ['a middle byte of the Z count', z.payloadStart + 5, 'volume:sparse'],
  ];
  for (const [name, position, part] of flips) {
    const corrupt = Buffer.from(bundle);
    corrupt[position]! ^= 0x01;
    const outcome = await readBundle(corrupt, 65536);
    const failed = outcome.parts.find((p) => p.part === part)!;
    assert.equal(failed.error?.code, BUNDLE_ERROR_CODES.partMismatch, `${name}: ${String(failed.error)}`);
    assert.ok(failed.dataError, `${name}: the consumer sees an error, not EOF`);
    for (const other of outcome.parts.filter((p) => p.part !== part))
      assert.ok(other.trailer, `${name}: part ${other.part} still verifies`);
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.streamMismatch, name);
    // The stream hash itself matches (payload records are not in it); the T record's part list catches it.
    assert.match(
      outcome.error.message,
      new RegExp(`T record's parts says (bytes|sha256) .* for part "${part}"`),
      `${name}: ${outcome.error.message}`,
    );
  }
});

test('2.0: a dropped or duplicated D record fails the part and the bundle; a Z record swapped for D bytes does not', async () => {
  const { bundle, payloads } = await mixedBundle();
  const records = walkRecords(bundle);
  const d = records.filter((record) => record.type === 'D')[1]!;
  const dropped = Buffer.concat([bundle.subarray(0, d.start), bundle.subarray(d.end)]);
  const duplicated = Buffer.concat([bundle.subarray(0, d.end), bundle.subarray(d.start)]);
  for (const [name, corrupt] of [
    ['dropped', dropped],
    ['duplicated', duplicated],
  ] as const) {
    const outcome = await readBundle(corrupt, 65536);
    assert.equal(outcome.parts[0]?.error?.code, BUNDLE_ERROR_CODES.partMismatch, name);
    assert.ok(outcome.parts[1]?.trailer, `${name}: the other part verifies`);
    assert.equal(outcome.error?.code, BUNDLE_ERROR_CODES.streamMismatch, name);
    assert.match(outcome.error.message, /received \d+ bytes sha256 [0-9a-f]+ before the T record/, name);
  }
  // Where the writer splits the payload carries no meaning: a 2.0 bundle rebuilt with the zero run as
  // D records (another valid writer) verifies with the same stream hash, its T.bytes apart.
  const z = records.find((record) => record.type === 'Z')!;
  const count = Number(bundle.readBigUInt64BE(z.payloadStart));
  const asData = Buffer.concat(encodeRecord('D', Buffer.alloc(count)));
  const rebuilt = Buffer.concat([bundle.subarray(0, z.start), asData, bundle.subarray(z.end)]);
  const tRecord = walkRecords(rebuilt).at(-1)!;
  const t = JSON.parse(rebuilt.subarray(tRecord.payloadStart, tRecord.end).toString()) as { bytes: number };
  const fixed = Buffer.concat([
    rebuilt.subarray(0, tRecord.start),
    ...encodeRecord('T', Buffer.from(JSON.stringify({ ...t, bytes: tRecord.start }))),
  ]);
  const outcome = await readBundle(fixed, 65536);
  assert.equal(outcome.error, undefined, String(outcome.error));
  assert.ok(outcome.parts[1]!.data.equals(payloads[1]!));
});
