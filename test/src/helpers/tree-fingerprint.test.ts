// The fingerprint helpers must see every kind of difference the e2e tests rely on, or "identical" would mean nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, link, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffTreeFingerprints, localShell, treeFingerprint } from './index.js';

test('treeFingerprint sees content, mode, owner, symlink target and hard-link changes; odd names survive', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tree-fingerprint-'));
  try {
    const odd = 'tab\there, newline\nthere ü.txt';
    await writeFile(join(dir, 'a.txt'), 'alpha\n');
    await writeFile(join(dir, odd), 'odd\n');
    await link(join(dir, 'a.txt'), join(dir, 'a-link.txt'));
    await symlink('a.txt', join(dir, 'latest'));
    await writeFile(join(dir, 'b.txt'), 'beta\n', { mode: 0o640 });
    await chmod(join(dir, 'b.txt'), 0o640);
    const before = await treeFingerprint(localShell, dir);
    assert.deepEqual(
      before.entries.map((entry) => entry.path),
      ['.', 'a-link.txt', 'a.txt', 'b.txt', 'latest', odd],
    );
    assert.deepEqual(before.entries.find((entry) => entry.path === 'a.txt')?.hardLinks, ['a-link.txt', 'a.txt']);
    assert.equal(before.entries.find((entry) => entry.path === odd)?.size, 4);
    assert.deepEqual(diffTreeFingerprints(before, await treeFingerprint(localShell, dir)), []);

    await chmod(join(dir, 'b.txt'), 0o600);
    await chown(join(dir, odd), 4321, 4322);
    await unlink(join(dir, 'latest'));
    await symlink('b.txt', join(dir, 'latest'));
    await unlink(join(dir, 'a-link.txt'));
    await writeFile(join(dir, 'a-link.txt'), 'alpha\n');
    const after = await treeFingerprint(localShell, dir);
    assert.deepEqual(
      diffTreeFingerprints(before, after).sort(),
      [
        '~ a-link.txt: hardLinks ["a-link.txt","a.txt"] -> undefined',
        '~ a.txt: hardLinks ["a-link.txt","a.txt"] -> undefined',
        '~ b.txt: mode "640" -> "600"',
        `~ latest: target "a.txt" -> "b.txt"`,
        `~ ${odd}: gid 0 -> 4322`,
        `~ ${odd}: uid 0 -> 4321`,
      ].sort(),
    );
    await assert.rejects(treeFingerprint(localShell, join(dir, 'missing')), /command failed on local/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
