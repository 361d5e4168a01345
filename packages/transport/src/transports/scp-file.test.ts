// The scp transport's staged stream file with real processes: a producer writing its stdout straight
// into the file (StagedFileWriter), then the target half (openReceiver + runReceiver) checking it in
// place and tar reading it itself. Every way the file can go wrong must fail by stage and code, leave
// DIR as it was and no staging dir or staged file behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync } from 'node:fs';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { Arg } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import type { StreamEvent, StreamTrailer } from '../contract.js';
import { runReceiver, type ReceiverOptions, type ReceiveResult } from '../receive/receiver.js';
import { scpTransport } from './scp.js';
import { encodeStagedHeader, SCP_HEADER_BYTES, StagedFileWriter } from './scp-file.js';

const host = new LocalHost();
let work = '';
let counter = 0;

async function sh(script: string): Promise<string> {
  const result = await host.run({ argv: ['bash', '-euo', 'pipefail', '-c', script], cwd: work });
  assert.equal(result.exitCode, 0, `${script}\n${result.stderr}`);
  return result.stdout;
}

/** Runs `argv` with its stdout the staged file, as the scp sender does; returns the file and its trailer. */
async function stage(argv: readonly Arg[]): Promise<{ path: string; trailer: StreamTrailer }> {
  counter += 1;
  const path = join(work, `staged-${counter}.dk`);
  const fd = openSync(path, 'w+', 0o600);
  try {
    const writer = new StagedFileWriter(fd);
    writer.start();
    const result = await host.spawn({ argv, stdoutFd: fd, cwd: work }).wait();
    const trailer = await writer.finish({ exitCode: result.exitCode, signal: result.signal });
    assert.equal(writer.bytes, trailer.bytes);
    return { path, trailer };
  } finally {
    closeSync(fd);
  }
}

async function receive(
  path: string,
  consumer: ReceiverOptions['consumer'],
): Promise<{ result: ReceiveResult; events: StreamEvent[] }> {
  const input = await scpTransport.openReceiver({ from: path, deleteAfter: true, host, runId: 'run1', label: 'x' });
  assert.equal(input.stagedFile, path, 'a staged stream file is read in place');
  const events: StreamEvent[] = [];
  const result = await runReceiver({
    stream: 'volumes',
    runId: 'run1',
    consumer,
    input,
    stallSeconds: 10,
    emit: (event) => events.push(event),
    host,
  });
  return { result, events };
}

/** The target tree and everything beside it, for "untouched" checks. */
const snapshot = (): Promise<string> => sh('find target -printf "%p %s %m\\n" | sort');

/** Receives `path` into target/app, expects the failure, DIR untouched, no staging and no staged file left. */
async function expectFailure(path: string, stage: string, code: string): Promise<ReceiveResult> {
  const before = await snapshot();
  const { result, events } = await receive(path, { kind: 'into', dir: join(work, 'target', 'app') });
  assert.deepEqual(!result.ok && [result.stage, result.code], [stage, code], JSON.stringify(result));
  assert.equal(await snapshot(), before);
  assert.deepEqual(await readdir(join(work, 'target')), ['app']);
  assert.equal(existsSync(path), false, 'the staged file is deleted after a failure too');
  assert.equal(events.filter((event) => event.kind === 'failed').length, 1);
  assert.equal(
    events.some((event) => event.kind === 'done'),
    false,
  );
  return result;
}

const tarSource = ['tar', '-C', 'src', '-cf', '-', '.'];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'scp-file-'));
  await sh(`
    mkdir -p src/sub "src/odd name" target/app
    echo hello > src/sub/file
    head -c 3000000 /dev/urandom > "src/odd name/blob"
    for i in $(seq 1 40); do head -c $((i * 1000)) /dev/urandom > src/sub/f$i; done
    ln src/sub/file src/sub/hard
    ln -s sub/file src/link
    chmod 0640 src/sub/file
    echo old > target/app/old-file
  `);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('the producer writes the file itself: header + its exact bytes, the trailer hashing them', async () => {
  const { path, trailer } = await stage(tarSource);
  const file = await readFile(path);
  const payload = file.subarray(SCP_HEADER_BYTES);
  const direct = await host.run({ argv: ['sh', '-c', 'tar -C src -cf - . | sha256sum'], cwd: work });
  assert.equal(file.length, SCP_HEADER_BYTES + trailer.bytes);
  assert.equal(trailer.sha256, createHash('sha256').update(payload).digest('hex'));
  assert.equal(direct.stdout.split(' ')[0], trailer.sha256);
  assert.deepEqual([trailer.producerExit, trailer.producerSignal], [0, null]);
  assert.deepEqual(file.subarray(0, SCP_HEADER_BYTES), encodeStagedHeader(trailer));
});

test('into DIR: tar reads the staged file in place; DIR replaced, staged file deleted, events in order', async () => {
  const { path, trailer } = await stage(tarSource);
  const { result, events } = await receive(path, { kind: 'into', dir: join(work, 'target', 'app') });
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.deepEqual(result.ok && [result.bytes, result.sha256], [trailer.bytes, trailer.sha256]);
  await sh(
    `diff -r src target/app && test "$(stat -c %h target/app/sub/hard)" = 2 && test "$(readlink target/app/link)" = sub/file`,
  );
  assert.deepEqual(await readdir(join(work, 'target')), ['app']);
  assert.equal(existsSync(path), false);
  const kinds = events.map((event) => event.kind);
  assert.deepEqual([kinds[0], kinds.at(-1)], ['ready', 'done']);
  assert.ok(
    kinds.indexOf('connected') < kinds.indexOf('received') && kinds.indexOf('received') < kinds.indexOf('done'),
  );
});

test('command consumer: reads exactly the payload from the file', async () => {
  const { path, trailer } = await stage(['head', '-c', '5000017', '/dev/urandom']);
  const out = join(work, 'sum.txt');
  const { result } = await receive(path, { kind: 'command', argv: ['sh', '-c', 'sha256sum > "$0"', out] });
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.equal((await readFile(out, 'utf8')).split(' ')[0], trailer.sha256);
  assert.equal(trailer.bytes, 5000017);
});

test('a truncated staged file fails as integrity FRAME_TRUNCATED before tar runs', async () => {
  const { path } = await stage(tarSource);
  await truncate(path, (await stat(path)).size - 1000);
  const result = await expectFailure(path, 'integrity', 'FRAME_TRUNCATED');
  assert.match(!result.ok ? result.message : '', /truncated/);
});

test('a staged file cut inside its header fails as FRAME_TRUNCATED', async () => {
  const { path } = await stage(tarSource);
  await truncate(path, 100);
  await expectFailure(path, 'integrity', 'FRAME_TRUNCATED');
});

test('a padded staged file fails as integrity FRAME_GARBAGE', async () => {
  const { path } = await stage(tarSource);
  await appendFile(path, Buffer.alloc(512));
  const result = await expectFailure(path, 'integrity', 'FRAME_GARBAGE');
  assert.match(!result.ok ? result.message : '', /512 bytes more than the sender wrote/);
});

test('one byte changed in file data fails as integrity FRAME_MISMATCH (tar ran, staging thrown away)', async () => {
  const { path, trailer } = await stage(tarSource);
  const handle = await open(path, 'r+');
  const at = SCP_HEADER_BYTES + Math.floor(trailer.bytes / 2);
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, at);
  byte[0] = byte[0]! ^ 0xff;
  await handle.write(byte, 0, 1, at);
  await handle.close();
  await expectFailure(path, 'integrity', 'FRAME_MISMATCH');
});

test('a tar header changed in transit is the copy failing (FRAME_MISMATCH), not the producer (TAR_GARBAGE)', async () => {
  const { path } = await stage(tarSource);
  const handle = await open(path, 'r+');
  await handle.write(Buffer.from('X'), 0, 1, SCP_HEADER_BYTES + 10);
  await handle.close();
  await expectFailure(path, 'integrity', 'FRAME_MISMATCH');
});

test('a header that was never completed (the placeholder) fails as FRAME_GARBAGE', async () => {
  counter += 1;
  const path = join(work, `placeholder-${counter}.dk`);
  await writeFile(path, Buffer.concat([encodeStagedHeader(), await readFile(join(work, 'src', 'sub', 'f1'))]));
  await expectFailure(path, 'integrity', 'FRAME_GARBAGE');
});

test('a failing producer is named from the trailer: stage producer, its exit code', async () => {
  const { path, trailer } = await stage(['sh', '-c', 'tar -C src -cf - . | head -c 100000; exit 4']);
  assert.equal(trailer.producerExit, 4);
  const result = await expectFailure(path, 'producer', 'PRODUCER_FAILED');
  assert.equal(!result.ok && result.exitCode, 4);
});

test('an unsafe tar entry is refused by the guard before tar sees the file', async () => {
  await sh("mkdir -p evil && echo x > evil/f && tar -C evil --transform 's,^,../,' -cf evil.tar f");
  const { path } = await stage(['cat', 'evil.tar']);
  await expectFailure(path, 'integrity', 'TAR_UNSAFE_ENTRY');
  assert.equal(existsSync(join(work, 'target', 'f')), false);
});

test('the guard walks the headers of a file with pax and GNU long names, seeking over the data', async () => {
  const long = `${'d'.repeat(120)}/${'n'.repeat(150)}`;
  await sh(
    `rm -rf longsrc && mkdir -p "longsrc/${long.split('/')[0]}" && head -c 70000 /dev/urandom > "longsrc/${long}" && tar -C longsrc --format=pax -cf pax.tar . && tar -C longsrc --format=gnu -cf gnu.tar .`,
  );
  for (const name of ['pax.tar', 'gnu.tar']) {
    const { path } = await stage(['cat', name]);
    const dir = join(work, 'target', `long-${name}`);
    const { result } = await receive(path, { kind: 'into', dir });
    assert.equal(result.ok, true, JSON.stringify(result));
    await sh(`diff -r longsrc "${dir}"`);
    await rm(dir, { recursive: true });
  }
  // The same long name, but its entry escapes: found through the long-name record.
  await sh(`tar -C longsrc --format=pax --transform 's,^\\./,../,' -cf evil-pax.tar ./${long.split('/')[0]}`);
  const { path } = await stage(['cat', 'evil-pax.tar']);
  await expectFailure(path, 'integrity', 'TAR_UNSAFE_ENTRY');
});

test('a producer that seeks back on its stdout (pg_dump -Fc rewrites its TOC) is hashed as its final file', async () => {
  // Writes 3 MB, waits until the sender surely hashed them, then goes back to where it started and
  // rewrites its first bytes, like pg_dump -Fc.
  const script =
    'import os, time\nstart = os.lseek(1, 0, os.SEEK_CUR)\nos.write(1, os.urandom(3000000))\ntime.sleep(0.5)\nos.lseek(1, start, os.SEEK_SET)\nos.write(1, b"REWRITTEN")';
  const { path, trailer } = await stage(['python3', '-c', script]);
  const payload = (await readFile(path)).subarray(SCP_HEADER_BYTES);
  assert.equal(payload.subarray(0, 9).toString(), 'REWRITTEN');
  assert.equal(trailer.bytes, 3000000);
  assert.equal(trailer.sha256, createHash('sha256').update(payload).digest('hex'));
  const out = join(work, 'seek-sum.txt');
  const { result } = await receive(path, { kind: 'command', argv: ['sh', '-c', 'sha256sum > "$0"', out] });
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.equal((await readFile(out, 'utf8')).split(' ')[0], trailer.sha256);
});

test('a producer that writes before its start (an absolute seek to 0) is refused by the sender', async () => {
  const script = 'import os\nos.write(1, b"x" * 10000)\nos.lseek(1, 0, os.SEEK_SET)\nos.write(1, b"header")';
  await assert.rejects(stage(['python3', '-c', script]), /wrote before the start of its output/);
});
