import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { digestTree } from './checksums.js';

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

test('digestTree: every regular file with its own size and SHA-256, sorted, several hashed at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'digest-tree-'));
  try {
    const expected: { path: string; size: number; sha256: string }[] = [];
    // Files of different sizes in nested dirs: a hash landing on another file's entry fails the comparison.
    for (let i = 0; i < 60; i += 1) {
      const path = `d${i % 3}/sub${i % 2}/f${String(i).padStart(2, '0')}`;
      const data = Buffer.alloc(1 + i * 40_000, i);
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), data);
      expected.push({ path: `p/${path}`, size: data.length, sha256: sha256(data) });
    }
    writeFileSync(join(dir, 'empty'), '');
    expected.push({ path: 'p/empty', size: 0, sha256: sha256('') });
    symlinkSync('d0', join(dir, 'link-to-dir'));
    symlinkSync('empty', join(dir, 'link-to-file'));
    expected.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    assert.deepEqual(await digestTree(dir, 'p/'), expected);
    // hashOnly: the others keep their size and get an empty hash.
    const only = await digestTree(dir, '', (path) => path.startsWith('d1/'));
    assert.equal(only.length, expected.length);
    for (const file of only) {
      const want = expected.find((entry) => entry.path === `p/${file.path}`)!;
      assert.equal(file.size, want.size);
      assert.equal(file.sha256, file.path.startsWith('d1/') ? want.sha256 : '');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
