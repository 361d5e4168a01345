import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '@deploykit/host';
import { listArchivedVolume, listArchivedVolumeEntries } from './archive-listing.js';
import { compareSpecialFiles, compareSymlinks, listSpecialFiles, listSymlinks } from './checksums.js';

const host = new LocalHost();

test('a volume archived with a FIFO and device nodes is refused at the listing, every such entry named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-listing-'));
  const env = { BORG_REPO: join(dir, 'repo'), BORG_PASSPHRASE: '', BORG_BASE_DIR: join(dir, '.borg') };
  try {
    const made = await host.run({
      argv: [
        'bash',
        '-euo',
        'pipefail',
        '-c',
        'mkdir -p app/data/sub app/other && echo x > app/data/file && ln -s /etc/hostname app/data/current && mkfifo app/data/sub/pipe && mknod app/data/null c 1 3 && mknod app/data/loop b 7 201 && mkfifo app/other/p && borg init -e none repo && borg create repo::a app',
      ],
      cwd: dir,
      env,
    });
    assert.equal(made.exitCode, 0, made.stderr);
    await assert.rejects(
      listArchivedVolume(host, env, 'a', 'app/data'),
      (error: Error & { code?: string; kind?: string }) => {
        assert.equal(error.code, 'VOLUME_SPECIAL_FILES');
        assert.equal(error.kind, 'config');
        assert.match(
          error.message,
          /volume app\/data holds device nodes or FIFOs it does not declare, which a migration does not carry \(archive a\)/,
        );
        assert.match(
          (error as Error & { hint?: string }).hint ?? '',
          /special_files: \[\{ path: "[a-z/]+", type: (fifo|char|block) \}/,
        );
        for (const named of ['"sub/pipe" (FIFO)', '"null" (character device)', '"loop" (block device)'])
          assert.ok(error.message.includes(named), `${named} in ${error.message}`);
        assert.ok(!error.message.includes('"p"'), "another volume's FIFO is not named");
        return true;
      },
    );
    // Declared (exact path and type) they are listed, not refused; a wrong type or one left out still is.
    const declared = [
      { path: 'sub/pipe', type: 'fifo' },
      { path: 'null', type: 'char' },
      { path: 'loop', type: 'block' },
    ] as const;
    const listed = await listArchivedVolumeEntries(host, env, 'a', 'app/data', declared);
    assert.deepEqual(listed.special, [
      { path: 'loop', type: 'block' },
      { path: 'null', type: 'char' },
      { path: 'sub/pipe', type: 'fifo' },
    ]);
    assert.deepEqual(
      listed.files.map((file) => file.path),
      ['file'],
    );
    await assert.rejects(
      listArchivedVolume(host, env, 'a', 'app/data', [declared[0], declared[1], { path: 'loop', type: 'char' }]),
      /holds device nodes or FIFOs it does not declare.*: "loop" \(block device\)$/,
    );
    await assert.rejects(listArchivedVolume(host, env, 'a', 'app/data', declared.slice(1)), /: "sub\/pipe" \(FIFO\)$/);
    // Without them the listing holds the regular files only (the symlink is carried by tar, not listed).
    const cleaned = await host.run({
      argv: [
        'bash',
        '-euo',
        'pipefail',
        '-c',
        'rm app/data/sub/pipe app/data/null app/data/loop && borg create repo::b app',
      ],
      cwd: dir,
      env,
    });
    assert.equal(cleaned.exitCode, 0, cleaned.stderr);
    assert.deepEqual(
      (await listArchivedVolume(host, env, 'b', 'app/data')).map((file) => file.path),
      ['file'],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the archive listing names every symlink with its target, and a missing or re-pointed link is a verification difference', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-listing-'));
  const env = { BORG_REPO: join(dir, 'repo'), BORG_PASSPHRASE: '', BORG_BASE_DIR: join(dir, '.borg') };
  try {
    const made = await host.run({
      argv: [
        'bash',
        '-euo',
        'pipefail',
        '-c',
        'mkdir -p app/data/sub && echo x > app/data/file && ln -s /etc/hostname app/data/current && ln -s ../nowhere app/data/sub/dangling && ln -s current app/data/chain && borg init -e none repo && borg create repo::a app && mkdir out && borg export-tar --strip-components=2 ::a - app/data | tar -x -C out',
      ],
      cwd: dir,
      env,
    });
    assert.equal(made.exitCode, 0, made.stderr);
    const { files, symlinks } = await listArchivedVolumeEntries(host, env, 'a', 'app/data');
    assert.deepEqual(
      files.map((file) => file.path),
      ['file'],
    );
    assert.deepEqual(symlinks, [
      ['chain', 'current'],
      ['current', '/etc/hostname'],
      ['sub/dangling', '../nowhere'],
    ]);
    const out = join(dir, 'out');
    assert.deepEqual(compareSymlinks(symlinks, await listSymlinks(out)), []);
    await host.run({
      argv: ['bash', '-c', 'rm out/chain && ln -sfn /etc/passwd out/current && ln -s file out/extra'],
      cwd: dir,
    });
    assert.deepEqual(compareSymlinks(symlinks, await listSymlinks(out)), [
      'missing symlink chain',
      'symlink current points to "/etc/passwd", expected "/etc/hostname"',
      'unexpected symlink extra',
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('declared special files arrive through borg export-tar | tar -x with their type and device number, and a changed one is a verification difference', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-listing-'));
  const env = { BORG_REPO: join(dir, 'repo'), BORG_PASSPHRASE: '', BORG_BASE_DIR: join(dir, '.borg') };
  try {
    const made = await host.run({
      argv: [
        'bash',
        '-euo',
        'pipefail',
        '-c',
        'mkdir -p app/data/run out && mkfifo app/data/run/q && mknod app/data/null c 1 3 && mknod app/data/loop b 7 300 && borg init -e none repo && borg create repo::a app && borg export-tar --strip-components=2 ::a - app/data | tar -x --numeric-owner -p -C out',
      ],
      cwd: dir,
      env,
    });
    assert.equal(made.exitCode, 0, made.stderr);
    const expected = [
      { path: 'loop', type: 'block', major: 7, minor: 300 },
      { path: 'null', type: 'char', major: 1, minor: 3 },
      { path: 'run/q', type: 'fifo' },
    ] as const;
    assert.deepEqual(await listSpecialFiles(join(dir, 'out')), expected);
    assert.deepEqual(compareSpecialFiles(expected, await listSpecialFiles(join(dir, 'out'))), []);
    await host.run({
      argv: ['bash', '-c', 'rm out/run/q && rm out/null && mknod out/null c 1 5 && mkfifo out/extra'],
      cwd: dir,
    });
    assert.deepEqual(compareSpecialFiles(expected, await listSpecialFiles(join(dir, 'out'))), [
      'null is a char 1,5, expected a char 1,3',
      'missing fifo run/q',
      'unexpected fifo extra',
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
