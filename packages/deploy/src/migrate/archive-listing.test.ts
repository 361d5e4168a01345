import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '@deploykit/host';
import { listArchivedVolume } from './archive-listing.js';

const host = new LocalHost();

test('a volume archived with a FIFO and device nodes is refused at the listing, every such entry named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-listing-'));
  const env = { BORG_REPO: join(dir, 'repo'), BORG_PASSPHRASE: '', BORG_BASE_DIR: join(dir, '.borg') };
  try {
    const made = await host.run({
      argv: ['bash', '-euo', 'pipefail', '-c', 'mkdir -p app/data/sub app/other && echo x > app/data/file && ln -s /etc/hostname app/data/current && mkfifo app/data/sub/pipe && mknod app/data/null c 1 3 && mknod app/data/loop b 7 201 && mkfifo app/other/p && borg init -e none repo && borg create repo::a app'],
      cwd: dir,
      env,
    });
    assert.equal(made.exitCode, 0, made.stderr);
    await assert.rejects(listArchivedVolume(host, env, 'a', 'app/data'), (error: Error & { code?: string; kind?: string }) => {
      assert.equal(error.code, 'VOLUME_SPECIAL_FILES');
      assert.equal(error.kind, 'config');
      assert.match(error.message, /volume app\/data holds device nodes or FIFOs, which a migration does not carry \(archive a\)/);
      for (const named of ['"sub/pipe" (FIFO)', '"null" (character device)', '"loop" (block device)']) assert.ok(error.message.includes(named), `${named} in ${error.message}`);
      assert.ok(!error.message.includes('"p"'), 'another volume\'s FIFO is not named');
      return true;
    });
    // Without them the listing holds the regular files only (the symlink is carried by tar, not listed).
    const cleaned = await host.run({ argv: ['bash', '-euo', 'pipefail', '-c', 'rm app/data/sub/pipe app/data/null app/data/loop && borg create repo::b app'], cwd: dir, env });
    assert.equal(cleaned.exitCode, 0, cleaned.stderr);
    assert.deepEqual((await listArchivedVolume(host, env, 'b', 'app/data')).map((file) => file.path), ['file']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
