import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchDigest, fileDigest } from './fetch-bytes.js';
import { hashLimit } from './uploads-check.js';

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Serves `body` at /len (with Content-Length) and /chunked (without), in 64 KiB writes; counts what each answer wrote. */
async function serve(body: Buffer): Promise<{ url: string; written: number[]; close: () => Promise<void> }> {
  const written: number[] = [];
  const server = createServer((request, response) => {
    const index = written.push(0) - 1;
    if (request.url === '/len') response.setHeader('Content-Length', body.length);
    let offset = 0;
    const pump = (): void => {
      while (offset < body.length && !response.destroyed) {
        const chunk = body.subarray(offset, offset + 65536);
        offset += chunk.length;
        written[index]! += chunk.length;
        if (!response.write(chunk)) return void response.once('drain', pump);
      }
      if (!response.destroyed) response.end();
    };
    response.on('close', () => (offset = body.length));
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    written,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

test('fetchDigest with a limit hashes the prefix and stops downloading when the length is declared', async () => {
  const body = randomBytes(48 * 1024 * 1024);
  const server = await serve(body);
  try {
    const whole = await fetchDigest(`${server.url}/len`);
    assert.ok(!('error' in whole));
    assert.deepEqual(whole, { status: 200, bytes: body.length, sha256: sha(body), hashedBytes: body.length });
    const prefix = await fetchDigest(`${server.url}/len`, 10_000, 100_000);
    assert.deepEqual(prefix, {
      status: 200,
      bytes: body.length,
      sha256: sha(body.subarray(0, 100_000)),
      hashedBytes: 100_000,
    });
    // The server was cut off long before the end (socket buffers hold a few MiB at most).
    assert.ok(server.written[1]! < body.length / 2, `the server wrote ${server.written[1]} of ${body.length} bytes`);
    // Without a declared length the rest is read and counted (not kept), so the size is still known.
    const chunked = await fetchDigest(`${server.url}/chunked`, 10_000, 100_000);
    assert.deepEqual(chunked, {
      status: 200,
      bytes: body.length,
      sha256: sha(body.subarray(0, 100_000)),
      hashedBytes: 100_000,
    });
  } finally {
    await server.close();
  }
});

test('fileDigest hashes at most the limit and reports the whole size; hashLimit follows the baseline', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-fetch-bytes-'));
  try {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(join(dir, 'f'), data);
    assert.deepEqual(await fileDigest(join(dir, 'f')), {
      bytes: data.length,
      sha256: sha(data),
      hashedBytes: data.length,
    });
    assert.deepEqual(await fileDigest(join(dir, 'f'), 1024 * 1024), {
      bytes: data.length,
      sha256: sha(data.subarray(0, 1024 * 1024)),
      hashedBytes: 1024 * 1024,
    });
    await writeFile(join(dir, 'empty'), '');
    assert.deepEqual(await fileDigest(join(dir, 'empty'), 10), {
      bytes: 0,
      sha256: sha(Buffer.alloc(0)),
      hashedBytes: 0,
    });
    await assert.rejects(fileDigest(join(dir, 'missing')), { code: 'ENOENT' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // No baseline: the check's max_bytes. A baseline entry: its own prefix, or the whole file when it hashed all.
  assert.equal(hashLimit(undefined, 4096), 4096);
  assert.equal(hashLimit({ name: 'a', sha256: 'x', bytes: 10_000, hashedBytes: 4096 }, 1024), 4096);
  assert.equal(hashLimit({ name: 'a', sha256: 'x', bytes: 10_000 }, 1024), Number.POSITIVE_INFINITY);
});
