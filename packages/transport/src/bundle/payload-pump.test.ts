// The bundle writer's two paths with real processes: a producer child (bash, cat, head) whose stdout
// is a socketpair, and a sink child (`cat`, standing where ssh stands) whose output the reader reads.
// Each test runs on the pump path and on the node path (DEPLOY_BUNDLE_PUMP=0) and checks which one ran.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { BUNDLE_ERROR_CODES, BundleError, type BundleProducerStatus } from './bundle-format.js';
import { BundleReader, type BundleItem } from './bundle-reader.js';
import { BundleWriter } from './bundle-writer.js';

const MiB = 1024 * 1024;
const PATHS = ['pump', 'node'] as const;
type WriterPath = (typeof PATHS)[number];

const dir = mkdtempSync(join(tmpdir(), 'deploy-pump-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` with DEPLOY_BUNDLE_PUMP set for `path`, restoring the variable after. */
async function onPath<T>(path: WriterPath, body: () => Promise<T>): Promise<T> {
  const before = process.env['DEPLOY_BUNDLE_PUMP'];
  process.env['DEPLOY_BUNDLE_PUMP'] = path === 'pump' ? '1' : '0';
  try {
    return await body();
  } finally {
    if (before === undefined) delete process.env['DEPLOY_BUNDLE_PUMP'];
    else process.env['DEPLOY_BUNDLE_PUMP'] = before;
  }
}

/** A producer: `bash -c script`, its stdout a child socket as `deploy migrate` gets it, and its exit status. */
function producer(script: string): { child: ChildProcess; stdout: Readable; status: Promise<BundleProducerStatus> } {
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const status = new Promise<BundleProducerStatus>((resolve) =>
    child.on('exit', (exitCode, signal) => resolve({ exitCode, signal, stderrTail: stderr })),
  );
  return { child, stdout: child.stdout!, status };
}

/** The transport: a `cat` child (ssh's place) whose stdin is the writer's sink; the reader reads its stdout. */
function transport(): { child: ChildProcess; writer: BundleWriter; reader: BundleReader } {
  const child = spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin!.on('error', () => undefined);
  return { child, writer: new BundleWriter(child.stdin!), reader: new BundleReader(child.stdout!) };
}

/** Takes a part item's data, hashing it; resolves with the size, hash and how `done` settled. */
async function takePart(
  item: BundleItem,
): Promise<{ part: string; bytes: number; sha256: string; error?: BundleError; trailerOk: boolean }> {
  assert.equal(item.kind, 'part');
  const part = item as Extract<BundleItem, { kind: 'part' }>;
  const hash = createHash('sha256');
  let bytes = 0;
  part.data.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  part.data.on('error', () => undefined);
  try {
    await part.done;
    return { part: part.part, bytes, sha256: hash.digest('hex'), trailerOk: true };
  } catch (error) {
    assert.ok(error instanceof BundleError, String(error));
    return { part: part.part, bytes, sha256: hash.digest('hex'), error, trailerOk: false };
  }
}

function fileOf(name: string, bytes: Buffer): { path: string; sha256: string; size: number } {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `condition` holds; fails the test after `ms` instead of hanging it. */
async function waitFor(what: string, condition: () => boolean, ms = 20000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`waited ${ms} ms for ${what}`);
    await sleep(20);
  }
}

/** Each test's bound: a hang fails it. */
const LIMIT = { timeout: 60000 };

const random = fileOf('random.bin', randomBytes(64 * MiB));
const sparse = fileOf(
  'sparse.bin',
  Buffer.concat([randomBytes(3 * MiB + 777), Buffer.alloc(12 * MiB), randomBytes(MiB + 5), Buffer.alloc(100000)]),
);

for (const path of PATHS) {
  test(
    `${path} path: a 64 MiB random part and a sparse part round-trip byte for byte; the sparse one costs its data on the wire`,
    LIMIT,
    async () =>
      onPath(path, async () => {
        const { child, writer, reader } = transport();
        await writer.writeHeader({ app: 'x' });
        const reading = (async () => {
          assert.equal((await reader.next()).kind, 'header');
          const parts = [await takePart(await reader.next()), await takePart(await reader.next())];
          return { parts, end: await reader.next() };
        })();
        const wire: number[] = [];
        for (const file of [random, sparse]) {
          const p = producer(`exec cat '${file.path}'`);
          const trailer = await writer.writePart(
            file === random ? 'volume:random' : 'volume:sparse',
            p.stdout,
            p.status,
          );
          assert.equal(trailer.bytes, file.size);
          assert.equal(trailer.sha256, file.sha256);
          wire.push(writer.lastPartWireBytes);
        }
        const trailer = await writer.finish();
        child.stdin!.end();
        const { parts, end } = await reading;
        assert.equal(end.kind, 'end');
        assert.deepEqual((end as Extract<BundleItem, { kind: 'end' }>).trailer, trailer);
        // The writer's count (pump records included) is every byte the reader got: T.bytes was right.
        assert.equal(reader.inputBytes, writer.bytesWritten);
        assert.deepEqual(
          parts.map((part) => [part.bytes, part.sha256, part.trailerOk]),
          [
            [random.size, random.sha256, true],
            [sparse.size, sparse.sha256, true],
          ],
        );
        assert.ok(
          wire[0]! > random.size && wire[0]! < random.size + 16 * 1024,
          `random part: ${wire[0]} bytes on the wire`,
        );
        assert.ok(wire[1]! < 4.5 * MiB, `sparse part of ${sparse.size} bytes: ${wire[1]} on the wire`);
        const cpu = writer.pumpCpu;
        if (path === 'pump') assert.ok(cpu.user + cpu.system > 0, 'the pump moved the bytes');
        else assert.equal(cpu.user + cpu.system, 0, 'node moved the bytes');
      }),
  );

  test(
    `${path} path: a producer killed mid-part gives PRODUCER_FAILED (SIGKILL) at the reader; the retry verifies`,
    LIMIT,
    async () =>
      onPath(path, async () => {
        const { child, writer, reader } = transport();
        await writer.writeHeader({ app: 'x' });
        const reading = (async () => {
          await reader.next();
          const first = await takePart(await reader.next());
          const second = await takePart(await reader.next());
          return { first, second, end: await reader.next() };
        })();
        // exec: the killed process is the one holding the pipe, so the pump sees EOF.
        const killed = producer(`head -c 3000000 /dev/urandom; exec sleep 60`);
        let pid: number | undefined;
        const killer = (async () => {
          await waitFor('partBytes to reach 3000000', () => writer.partBytes >= 3000000);
          pid = writer.pumpPid;
          killed.child.kill('SIGKILL');
        })();
        const failed = await writer.writePart('db', killed.stdout, killed.status);
        await killer;
        if (path === 'pump') assert.ok(pid !== undefined && !alive(pid), 'a pump ran and is gone');
        assert.equal(failed.producerSignal, 'SIGKILL');
        assert.equal(failed.bytes, 3000000);
        const good = producer(`exec cat '${sparse.path}'`);
        assert.equal((await writer.writePart('db', good.stdout, good.status)).attempt, 2);
        await writer.finish();
        child.stdin!.end();
        const { first, second, end } = await reading;
        assert.equal(first.error?.code, BUNDLE_ERROR_CODES.producerFailed);
        assert.match(first.error.message, /killed by SIGKILL after 3000000 bytes/);
        assert.equal(second.sha256, sparse.sha256);
        assert.ok(second.trailerOk);
        assert.equal(end.kind, 'end');
      }),
  );

  test(`${path} path: the receiver dying mid-part rejects writePart and leaves no pump process`, LIMIT, async () =>
    onPath(path, async () => {
      // The receiver stops after 2 MB: its stdin closes under the writer (EPIPE), as when ssh dies.
      const child = spawn('head', ['-c', '2000000'], { stdio: ['pipe', 'ignore', 'inherit'] });
      child.stdin!.on('error', () => undefined);
      const writer = new BundleWriter(child.stdin!);
      await writer.writeHeader({ app: 'x' });
      const p = producer(`exec cat '${random.path}'`);
      const pids = new Set<number>();
      const watch = setInterval(() => {
        if (writer.pumpPid !== undefined) pids.add(writer.pumpPid);
      }, 10);
      const started = Date.now();
      const error = await writer.writePart('volume:random', p.stdout, p.status).then(
        () => undefined,
        (reason: unknown) => reason as Error & { code?: string },
      );
      clearInterval(watch);
      assert.ok(error, 'writePart rejected');
      assert.ok(
        error.code === 'EPIPE' || error.code === BUNDLE_ERROR_CODES.sinkClosed,
        `${error.code}: ${error.message}`,
      );
      assert.ok(Date.now() - started < 10000);
      if (path === 'pump') assert.equal(pids.size, 1, 'one pump ran');
      for (const pid of pids) assert.ok(!alive(pid), `pump ${pid} is gone`);
      // What sendPart does next: the producer must not stay blocked on its pipe.
      p.child.kill('SIGKILL');
      p.stdout.destroy();
      assert.ok((await p.status).signal === 'SIGKILL' || (await p.status).exitCode !== null);
      await assert.rejects(writer.keepalive());
    }),
  );

  test(`${path} path: abort() in the middle of a part gives BUNDLE_ABORTED at the reader`, LIMIT, async () =>
    onPath(path, async () => {
      const { child, writer, reader } = transport();
      await writer.writeHeader({ app: 'x' });
      const reading = (async () => {
        await reader.next();
        const part = await takePart(await reader.next());
        return { part, abort: await reader.next() };
      })();
      const p = producer(`head -c 2000000 /dev/urandom; exec sleep 60`);
      const writing = writer.writePart('volume:uploads', p.stdout, p.status);
      await waitFor('partBytes to reach 2000000', () => writer.partBytes >= 2000000);
      const pid = writer.pumpPid;
      assert.equal(pid !== undefined, path === 'pump');
      const bytesBefore = writer.bytesWritten;
      await writer.keepalive();
      if (path === 'pump') assert.equal(writer.bytesWritten, bytesBefore, 'no K record while the pump writes');
      await writer.abort({ code: 'INTERRUPTED', reason: 'Ctrl-C' });
      await assert.rejects(writing, (error: BundleError) => error.code === BUNDLE_ERROR_CODES.aborted);
      if (pid !== undefined) assert.ok(!alive(pid), 'the pump exited');
      child.stdin!.end();
      const { part, abort } = await reading;
      assert.equal(part.error?.code, BUNDLE_ERROR_CODES.aborted);
      assert.equal(part.bytes, 2000000);
      assert.deepEqual(abort, { kind: 'abort', abort: { code: 'INTERRUPTED', reason: 'Ctrl-C' } });
      p.child.kill('SIGKILL');
      await p.status;
    }),
  );

  test(`${path} path: partBytes moves while a slow producer writes`, LIMIT, async () =>
    onPath(path, async () => {
      const { child, writer, reader } = transport();
      await writer.writeHeader({ app: 'x' });
      const reading = (async () => {
        await reader.next();
        return takePart(await reader.next());
      })();
      const p = producer('for i in 1 2 3 4 5 6 7 8; do head -c 100000 /dev/urandom; sleep 0.3; done');
      const samples: number[] = [];
      const watch = setInterval(() => samples.push(writer.partBytes), 100);
      const trailer = await writer.writePart('db', p.stdout, p.status);
      clearInterval(watch);
      assert.equal(trailer.bytes, 800000);
      const distinct = [...new Set(samples.filter((bytes) => bytes > 0 && bytes < 800000))];
      assert.ok(distinct.length >= 4, `partBytes took ${distinct.join(', ')} before the end`);
      assert.deepEqual(
        distinct,
        [...distinct].sort((a, b) => a - b),
        'partBytes only grows',
      );
      await writer.finish();
      child.stdin!.end();
      const part = await reading;
      assert.equal(part.bytes, 800000);
      assert.ok(part.trailerOk);
      const cpu = writer.pumpCpu;
      assert.equal(cpu.user + cpu.system > 0, path === 'pump');
    }),
  );
}

test('DEPLOY_BUNDLE_PUMP=0 or a source without a descriptor (a PassThrough) takes the node path', LIMIT, async () => {
  for (const [setting, viaPassThrough] of [
    ['0', false],
    ['1', true],
  ] as const) {
    await onPath(setting === '0' ? 'node' : 'pump', async () => {
      const { child, writer, reader } = transport();
      await writer.writeHeader({ app: 'x' });
      const reading = (async () => {
        await reader.next();
        return takePart(await reader.next());
      })();
      const p = producer(`exec cat '${sparse.path}'`);
      let source: Readable = p.stdout;
      if (viaPassThrough) {
        const { PassThrough } = await import('node:stream');
        source = p.stdout.pipe(new PassThrough());
      }
      let sawPump = false;
      const watch = setInterval(() => (sawPump ||= writer.pumpPid !== undefined), 5);
      await writer.writePart('p', source, p.status);
      clearInterval(watch);
      await writer.finish();
      child.stdin!.end();
      assert.equal((await reading).sha256, sparse.sha256);
      assert.equal(sawPump, false);
      assert.equal(writer.pumpCpu.user + writer.pumpCpu.system, 0);
    });
  }
});

for (const path of PATHS) {
  test(
    `${path} path: a small producer that exits while writePart still waits for the sink keeps its bytes`,
    LIMIT,
    async () =>
      onPath(path, async () => {
        // The transport reads only after 1 s and the header is 2 MiB: writePart waits for the sink before
        // the pump may start, and the producer (100 bytes) exits meanwhile. Node's child_process then
        // resumes the producer's stdout (flushStdio) and drops what nobody listens to: the lab's 0-byte part.
        const child = spawn('bash', ['-c', 'sleep 1; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
        child.stdin!.on('error', () => undefined);
        const writer = new BundleWriter(child.stdin!);
        const reader = new BundleReader(child.stdout!);
        const reading = (async () => {
          await reader.next();
          return takePart(await reader.next());
        })();
        const header = writer.writeHeader({ app: 'x', filler: 'f'.repeat(2 * MiB) });
        const p = producer('printf "%0100d" 7');
        let exited = false;
        p.child.on('exit', () => (exited = true));
        const trailer = await writer.writePart('files', p.stdout, p.status);
        await header;
        assert.ok(exited);
        await writer.finish();
        child.stdin!.end();
        const part = await reading;
        assert.equal(trailer.bytes, 100);
        assert.equal(part.bytes, 100);
        assert.ok(part.trailerOk);
        const cpu = writer.pumpCpu;
        assert.equal(cpu.user + cpu.system > 0, path === 'pump', 'the path the test is about ran');
      }),
  );
}
