import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TransportError } from '@deploykit/core';
import { FRAME_MAGIC, MAX_CHUNK } from '../contract.js';
import { FrameEncoder, type ProducerStatus } from './frame-encoder.js';
import { FrameDecoder } from './frame-decoder.js';

const OK: ProducerStatus = { exitCode: 0, signal: null };

/** Frames a payload, fed in pieces of `pieceSize`. */
async function encode(payload: Buffer, status: ProducerStatus = OK, pieceSize = 65536): Promise<Buffer> {
  const encoder = new FrameEncoder();
  const out: Buffer[] = [];
  encoder.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => encoder.on('end', resolve));
  for (let offset = 0; offset < payload.length; offset += pieceSize)
    encoder.write(payload.subarray(offset, offset + pieceSize));
  encoder.finish(status);
  await ended;
  return Buffer.concat(out);
}

/** Decodes framed bytes fed in pieces of `pieceSize`; returns the payload or the error. */
async function decode(
  framed: Buffer,
  pieceSize = 65536,
): Promise<{ payload: Buffer; error?: TransportError; decoder: FrameDecoder }> {
  const decoder = new FrameDecoder();
  const out: Buffer[] = [];
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < framed.length; offset += pieceSize)
    pieces.push(framed.subarray(offset, offset + pieceSize));
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk);
      callback();
    },
  });
  try {
    await pipeline(Readable.from(pieces), decoder, sink);
    return { payload: Buffer.concat(out), decoder };
  } catch (error) {
    assert.ok(error instanceof TransportError, `expected a TransportError, got ${String(error)}`);
    return { payload: Buffer.concat(out), error, decoder };
  }
}

const sizes = [0, 1, 511, 65536, MAX_CHUNK, MAX_CHUNK + 1, 3 * MAX_CHUNK + 12345];
for (const size of sizes) {
  test(`round trip of ${size} bytes`, async () => {
    const payload = randomBytes(size);
    const framed = await encode(payload, OK, size > MAX_CHUNK ? 5 * 1024 * 1024 : 65536);
    for (const piece of [1 + (size % 7), 4096, 1 << 20]) {
      if (piece < 100 && size > 100000) continue;
      const { payload: back, error, decoder } = await decode(framed, piece);
      assert.equal(error, undefined);
      assert.ok(back.equals(payload));
      assert.equal(decoder.payloadBytes, size);
      assert.equal(decoder.trailer?.bytes, size);
      assert.equal(decoder.trailer?.sha256, createHash('sha256').update(payload).digest('hex'));
    }
  });
}

test('encoder splits input larger than MAX_CHUNK into chunks of at most MAX_CHUNK', async () => {
  const framed = await encode(Buffer.alloc(MAX_CHUNK * 2 + 5, 7), OK, MAX_CHUNK * 3);
  let offset = FRAME_MAGIC.length;
  const lengths: number[] = [];
  for (;;) {
    const length = framed.readUInt32BE(offset);
    offset += 4 + length;
    if (length === 0) break;
    lengths.push(length);
  }
  assert.deepEqual(lengths, [MAX_CHUNK, MAX_CHUNK, 5]);
});

test('encoder writes the trailer when finish() comes after its input ended (piped producer)', async () => {
  const encoder = new FrameEncoder();
  const out: Buffer[] = [];
  encoder.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => encoder.on('end', resolve));
  Readable.from([Buffer.from('hello')]).pipe(encoder);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(encoder.trailer, undefined);
  encoder.finish({ exitCode: 0, signal: null });
  await ended;
  const { payload, error } = await decode(Buffer.concat(out));
  assert.equal(error, undefined);
  assert.equal(payload.toString(), 'hello');
});

test('truncation at every boundary type fails with FRAME_TRUNCATED', async () => {
  const payload = randomBytes(3000);
  const framed = await encode(payload, OK, 1000);
  const magic = FRAME_MAGIC.length;
  const trailerStart = magic + 3 * 1004 + 4;
  const cuts: Record<string, number> = {
    empty: 0,
    'inside magic': 3,
    'after magic': magic,
    'inside a chunk header': magic + 2,
    'inside a chunk': magic + 4 + 500,
    'between chunks': magic + 1004,
    'after the zero chunk': trailerStart,
    'inside the trailer length': trailerStart + 2,
    'inside the trailer json': trailerStart + 10,
    'one byte short': framed.length - 1,
  };
  for (const [name, cut] of Object.entries(cuts)) {
    const { error } = await decode(framed.subarray(0, cut), 700);
    assert.equal(error?.code, 'FRAME_TRUNCATED', name);
  }
});

test('garbage before the magic fails with FRAME_BAD_MAGIC', async () => {
  const framed = await encode(Buffer.from('payload'));
  const { error, payload } = await decode(Buffer.concat([Buffer.from('Oops, something went wrong\n'), framed]));
  assert.equal(error?.code, 'FRAME_BAD_MAGIC');
  assert.match(error?.message ?? '', /Oops, something/);
  assert.equal(payload.length, 0);
});

test('trailing text after the trailer is ignored (ffl "File transfer completed")', async () => {
  const payload = randomBytes(100000);
  const framed = await encode(payload);
  const { payload: back, error } = await decode(Buffer.concat([framed, Buffer.from('File transfer completed\n')]), 999);
  assert.equal(error, undefined);
  assert.ok(back.equals(payload));
});

test('a flipped payload byte fails with FRAME_MISMATCH', async () => {
  const framed = Buffer.from(await encode(randomBytes(5000)));
  framed[FRAME_MAGIC.length + 4 + 2500]! ^= 0x01;
  const { error } = await decode(framed);
  assert.equal(error?.code, 'FRAME_MISMATCH');
});

test('a trailer with the wrong byte count fails with FRAME_MISMATCH', async () => {
  const framed = await encode(Buffer.from('abc'));
  const text = framed.toString('latin1').replace('"bytes":3', '"bytes":4');
  const { error } = await decode(Buffer.from(text, 'latin1'));
  assert.equal(error?.code, 'FRAME_MISMATCH');
});

test('an absurd chunk length or a non-JSON trailer fails with FRAME_GARBAGE', async () => {
  const absurd = Buffer.concat([FRAME_MAGIC, Buffer.from('Oops, something went wrong')]);
  assert.equal((await decode(absurd)).error?.code, 'FRAME_GARBAGE');
  const zero = Buffer.alloc(4);
  const badJson = Buffer.concat([FRAME_MAGIC, zero, Buffer.from([0, 0, 0, 5]), Buffer.from('{nope')]);
  assert.equal((await decode(badJson)).error?.code, 'FRAME_GARBAGE');
  const wrongShape = Buffer.concat([FRAME_MAGIC, zero, Buffer.from([0, 0, 0, 2]), Buffer.from('{}')]);
  assert.equal((await decode(wrongShape)).error?.code, 'FRAME_GARBAGE');
});

test('producer exit 3 in the trailer fails with PRODUCER_FAILED naming the code', async () => {
  const { error, decoder } = await decode(await encode(Buffer.from('partial'), { exitCode: 3, signal: null }));
  assert.equal(error?.code, 'PRODUCER_FAILED');
  assert.match(error?.message ?? '', /exited with code 3/);
  assert.equal(decoder.trailer?.producerExit, 3);
});

test('producer killed by a signal fails with PRODUCER_FAILED naming the signal', async () => {
  const { error } = await decode(await encode(Buffer.from('partial'), { exitCode: null, signal: 'SIGKILL' }));
  assert.equal(error?.code, 'PRODUCER_FAILED');
  assert.match(error?.message ?? '', /SIGKILL/);
});
