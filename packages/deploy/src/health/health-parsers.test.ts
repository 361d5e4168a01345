import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRowCounts } from '../database/postgres.js';
import { parseKeyValueLines } from './credentials-file.js';
import { parseLogOffsets } from './logs-check.js';
import { isUrlServable, listVolumeFiles, pickSample } from './uploads-check.js';
import { joinUrlPath } from './url-join.js';

test('pickSample spreads over the sorted list deterministically', () => {
  assert.deepEqual(pickSample(['a', 'b', 'c'], 5), ['a', 'b', 'c']);
  assert.deepEqual(pickSample(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'], 3), ['a', 'd', 'g']);
});

test('parsers: log offsets, row counts, credentials, URL paths', () => {
  assert.deepEqual(
    [...parseLogOffsets('120 data/logs/error.log\n0 ./data/logs/server.out\nnoise\n')],
    [
      ['data/logs/error.log', 120],
      ['data/logs/server.out', 0],
    ],
  );
  assert.deepEqual(parseRowCounts('public.notes|3\npublic.users|1\n', '|'), { 'public.notes': 3, 'public.users': 1 });
  assert.deepEqual(parseRowCounts('t1\t7\n', '\t'), { t1: 7 });
  const values = parseKeyValueLines('# c\nUSERNAME=admin\nexport password="p w"\n');
  assert.equal(values.get('username'), 'admin');
  assert.equal(values.get('password'), 'p w');
  assert.equal(joinUrlPath('/uploads', 'dir/a b.txt'), '/uploads/dir/a%20b.txt');
});

test('names with control characters are never sampled: no web app serves them', () => {
  assert.equal(isUrlServable('report 2026 ünï.pdf'), true);
  assert.equal(isUrlServable('odd name\twith tab'), false);
  assert.equal(isUrlServable('line\nbreak'), false);
});

test('the uploads listing holds regular files and links to them, never links to folders', async () => {
  const { mkdtemp, mkdir, writeFile, symlink, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'dk-uploads-'));
  try {
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', 'a.txt'), 'a');
    await symlink('sub/a.txt', join(dir, 'link-to-file'));
    await symlink('sub', join(dir, 'link-to-dir'));
    await symlink('missing', join(dir, 'dangling'));
    assert.deepEqual(await listVolumeFiles(dir), ['link-to-file', 'sub/a.txt']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
