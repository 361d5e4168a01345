import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupStaging, createStaging, oldPathFor, swapIntoPlace } from './staging.js';

let work = '';
let dir = '';

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'staging-'));
  dir = join(work, 'app', 'volumes');
});

afterEach(async () => {
  await chmod(join(work, 'app'), 0o755).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

test('createStaging makes an empty 0700 dir beside DIR, even when DIR and its parent do not exist', async () => {
  const staging = await createStaging(dir, 'run1');
  assert.equal(staging, `${dir}.staging-run1`);
  assert.equal((await stat(staging)).mode & 0o777, 0o700);
  assert.deepEqual(await readdir(staging), []);
});

test('createStaging replaces a leftover staging dir of the same run', async () => {
  const first = await createStaging(dir, 'run1');
  await writeFile(join(first, 'half'), 'x');
  const second = await createStaging(dir, 'run1');
  assert.deepEqual(await readdir(second), []);
});

test('swapIntoPlace replaces an existing DIR, keeps its mode and removes the old copy', async () => {
  await mkdir(dir, { recursive: true, mode: 0o750 });
  await chmod(dir, 0o750);
  await writeFile(join(dir, 'old-file'), 'old');
  const staging = await createStaging(dir, 'run2');
  await writeFile(join(staging, 'new-file'), 'new');
  const result = await swapIntoPlace(dir, staging, 'run2');
  assert.deepEqual(result, { replaced: true });
  assert.deepEqual(await readdir(dir), ['new-file']);
  assert.equal((await stat(dir)).mode & 0o777, 0o750);
  assert.deepEqual((await readdir(join(work, 'app'))).sort(), ['volumes']);
});

test('swapIntoPlace into a missing DIR applies the given root mode', async () => {
  const staging = await createStaging(dir, 'run3');
  await writeFile(join(staging, 'f'), 'x');
  assert.deepEqual(await swapIntoPlace(dir, staging, 'run3', { rootMode: 0o755 }), { replaced: false });
  assert.equal((await stat(dir)).mode & 0o777, 0o755);
  assert.equal(await readFile(join(dir, 'f'), 'utf8'), 'x');
});

test('a failing swap puts DIR back untouched', async () => {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'keep'), 'keep');
  const staging = await createStaging(dir, 'run4');
  // The staging dir vanishes (as if removed by someone else): the second rename fails.
  await rm(staging, { recursive: true });
  await assert.rejects(
    swapIntoPlace(dir, staging, 'run4'),
    (error: Error & { code?: string }) => error.code === 'SWAP_FAILED',
  );
  assert.equal(await readFile(join(dir, 'keep'), 'utf8'), 'keep');
  assert.deepEqual(await readdir(join(work, 'app')), ['volumes']);
});

test('cleanupStaging removes leftovers of one run or of all runs, and nothing else', async () => {
  await mkdir(dir, { recursive: true });
  await createStaging(dir, 'a');
  await createStaging(dir, 'b');
  await mkdir(oldPathFor(dir, 'b'));
  await mkdir(join(work, 'app', 'volumes-other.staging-a'));
  assert.deepEqual(await cleanupStaging(dir, 'a'), [`${dir}.staging-a`]);
  assert.deepEqual((await cleanupStaging(dir)).sort(), [`${dir}.old-b`, `${dir}.staging-b`]);
  assert.deepEqual((await readdir(join(work, 'app'))).sort(), ['volumes', 'volumes-other.staging-a']);
});

test('cleanupStaging restores DIR when a swap died between its two renames', async () => {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'precious'), 'data');
  const staging = await createStaging(dir, 'c');
  await rename(dir, oldPathFor(dir, 'c'));
  await cleanupStaging(dir);
  assert.equal(await readFile(join(dir, 'precious'), 'utf8'), 'data');
  await assert.rejects(stat(staging));
});
