import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '@deploykit/host';
import { digestTree, listSymlinks } from './checksums.js';
import {
  buildExactPatterns,
  chooseDeltaHashing,
  computeVolumeDelta,
  exactPatternLine,
  planVolumeDelta,
  type VolumeDelta,
  type VolumeEntry,
} from './volume-delta.js';

const host = new LocalHost();

/** The delta reduced to what a cutover acts on: paths and what changed. */
function shape(delta: VolumeDelta): {
  added: string[];
  changed: string[];
  removed: string[];
  metadata: string[];
  bytes: number;
} {
  return {
    added: delta.added.map((entry) => `${entry.type} ${entry.path}`),
    changed: delta.changed.map((entry) => entry.path),
    removed: delta.removed.map((entry) => `${entry.type} ${entry.path}`),
    metadata: delta.metadata.map((change) => `${change.path}: ${change.changes.join(',')}`),
    bytes: delta.bytes,
  };
}

const BEFORE = `
mkdir -p app/data/keep app/data/gone app/data/sub app/other
printf same > app/data/same
printf 'old content' > app/data/edit
printf aaaa > app/data/samesize
printf bye > app/data/removed
printf mode > app/data/chmod && chmod 644 app/data/chmod
printf own > app/data/chown
printf ren > app/data/sub/old-name
printf x > app/data/xattr
printf t > app/data/touched
ln -s same app/data/link
printf g > app/data/gone/inner
printf f > app/data/type
printf trail > 'app/data/trail '
printf z > app/data/leader
printf elsewhere > app/other/file
borg init -e none repo && borg create repo::base app
`;

const AFTER = `
printf 'new content!!' > app/data/edit
printf bbbb > app/data/samesize
rm app/data/removed
chmod 600 app/data/chmod
chown 1234:4321 app/data/chown
mv app/data/sub/old-name app/data/keep/new-name
setfattr -n user.note -v hi app/data/xattr
touch -m -d '2020-01-02 03:04:05' app/data/touched
ln -sfn edit app/data/link
rm -r app/data/gone
rm app/data/type && ln -s same app/data/type
printf trail2 > 'app/data/trail '
ln app/data/leader app/data/follower
printf 'brand new' > app/data/sub/added
mkdir app/data/newdir && printf nn > app/data/newdir/f
printf odd > $'app/data/odd\\nname'
printf changed > app/other/file
borg create repo::final app
`;

const EXPECTED = {
  added: [
    'file follower',
    'file keep/new-name',
    'dir newdir',
    'file newdir/f',
    'file odd\nname',
    'file sub/added',
    'symlink type',
  ],
  changed: ['edit', 'samesize', 'trail '],
  removed: ['file gone/inner', 'file sub/old-name', 'dir gone', 'file removed', 'file type'],
  metadata: [
    '.: mtime',
    'chmod: mode',
    'chown: owner',
    'keep: mtime',
    'leader: ctime',
    'link: mtime,target',
    'sub: mtime',
    'touched: mtime',
    'xattr: ctime',
  ],
  // follower 1 + new-name 3 + newdir/f 2 + odd 3 + added 9; edit 13 + samesize 4 + trail 6
  bytes: 1 + 3 + 2 + 3 + 9 + 13 + 4 + 6,
};

test('the delta of a volume between two real borg archives: added, changed, removed, metadata-only, and the bytes to send', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-delta-'));
  const env = {
    BORG_REPO: join(dir, 'repo'),
    BORG_PASSPHRASE: '',
    BORG_BASE_DIR: join(dir, '.borg'),
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
  };
  try {
    const before = await host.run({ argv: ['bash', '-euo', 'pipefail', '-c', BEFORE], cwd: dir, env });
    assert.equal(before.exitCode, 0, before.stderr);
    const after = await host.run({ argv: ['bash', '-euo', 'pipefail', '-c', AFTER], cwd: dir, env });
    assert.equal(after.exitCode, 0, after.stderr);

    const { delta, finalListing, stats } = await computeVolumeDelta(host, env, {
      base: 'base',
      final: 'final',
      volumePath: 'app/data',
      hashing: 'candidates',
    });
    assert.deepEqual(shape(delta), EXPECTED);
    // Only files that are new or whose size, mtime or ctime moved were hashed: not "same".
    assert.equal(stats.hashed, 13);
    assert.equal(stats.finalEntries, finalListing.length);
    // ...and that shortcut gives the same delta and hashes as hashing every file of the final
    // archive, which is what a volume of small files gets by default.
    const full = await computeVolumeDelta(host, env, { base: 'base', final: 'final', volumePath: 'app/data' });
    assert.equal(full.stats.hashing, 'all');
    assert.deepEqual(full.delta, delta);
    assert.deepEqual(full.finalListing, finalListing);
    assert.equal(full.stats.hashed, finalListing.filter((entry) => entry.type === 'file').length);

    // What the target sets comes from the final archive.
    const byPath = new Map(delta.metadata.map((change) => [change.path, change.final]));
    assert.equal(byPath.get('chmod')?.perms, 'rw-------');
    assert.deepEqual([byPath.get('chown')?.uid, byPath.get('chown')?.gid], [1234, 4321]);
    assert.equal(byPath.get('link')?.target, 'edit');
    assert.match(byPath.get('touched')?.mtime ?? '', /^2020-01-02T03:04:05/);
    assert.equal(delta.added.find((entry) => entry.path === 'type')?.target, 'same');
    assert.match(delta.changed.find((entry) => entry.path === 'edit')?.sha256 ?? '', /^[0-9a-f]{64}$/);

    // The tar of exactly the entries to send: borg export-tar with the patterns selects them and
    // nothing else (not their parent directories, not the unchanged files, not another volume's).
    const sent = [...delta.added, ...delta.changed]
      .map((entry) => entry.path)
      .concat(delta.metadata.filter((change) => change.changes.includes('target')).map((change) => change.path));
    await mkdir(join(dir, 'out'));
    const tar = await host.run({
      argv: [
        'bash',
        '-euo',
        'pipefail',
        '-c',
        'borg export-tar --strip-components 2 --patterns-from <(cat) ::final - | tar -x -C out',
      ],
      cwd: dir,
      env,
      input: buildExactPatterns('app/data', sent),
    });
    assert.equal(tar.exitCode, 0, tar.stderr);
    const files = [...delta.added, ...delta.changed]
      .filter((entry) => entry.type === 'file')
      .map((entry) => ({ path: entry.path, size: entry.size, sha256: entry.sha256 }));
    assert.deepEqual(
      await digestTree(join(dir, 'out')),
      files.sort((a, b) => (a.path < b.path ? -1 : 1)),
    );
    assert.deepEqual(await listSymlinks(join(dir, 'out')), [
      ['link', 'edit'],
      ['type', 'same'],
    ]);
    assert.equal(
      files.reduce((sum, file) => sum + file.size, 0),
      delta.bytes,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('two archives with no change between them have an empty delta; a path that turns from a directory into a file is removed (children first) and added', () => {
  const entry = (path: string, type: VolumeEntry['type'], extra: Partial<VolumeEntry> = {}): VolumeEntry => ({
    path,
    type,
    perms: 'rw-r--r--',
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    mtime: '2026-01-01T00:00:00.000000',
    ctime: '2026-01-01T00:00:00.000000',
    flags: 0,
    size: 0,
    ...extra,
  });
  const base = [
    entry('.', 'dir'),
    entry('a', 'dir'),
    entry('a/b', 'file', { size: 3, sha256: '1'.repeat(64) }),
    entry('c', 'file', { size: 3, sha256: '2'.repeat(64) }),
  ];
  assert.deepEqual(shape(planVolumeDelta(base, base)), { added: [], changed: [], removed: [], metadata: [], bytes: 0 });
  const final = [
    entry('.', 'dir'),
    entry('a', 'file', { size: 5, sha256: '3'.repeat(64) }),
    entry('c', 'file', { size: 3, sha256: '2'.repeat(64), ctime: '2026-01-02T00:00:00.000000' }),
  ];
  assert.deepEqual(shape(planVolumeDelta(base, final)), {
    added: ['file a'],
    changed: [],
    removed: ['file a/b', 'dir a'],
    metadata: ['c: ctime'],
    bytes: 5,
  });
  // Hashing: all in one listing for small files, only the candidates for large ones (hard-link followers count no bytes).
  assert.equal(chooseDeltaHashing(base), 'all');
  assert.equal(
    chooseDeltaHashing([
      entry('.', 'dir'),
      entry('big', 'file', { size: 128 * 1024 }),
      entry('small', 'file', { size: 10 }),
    ]),
    'candidates',
  );
  assert.equal(
    chooseDeltaHashing([
      entry('.', 'dir'),
      entry('big', 'file', { size: 48 * 1024 }),
      entry('big2', 'file', { size: 48 * 1024, hardlinkOf: 'big' }),
    ]),
    'all',
  );
  assert.equal(chooseDeltaHashing([]), 'all');
  // Same size, no hash on either side: size, mtime and ctime decide (borg's files-cache rule).
  assert.deepEqual(
    shape(planVolumeDelta([entry('f', 'file', { size: 1 })], [entry('f', 'file', { size: 1, mtime: 'x', ctime: 'y' })]))
      .changed,
    ['f'],
  );
});

test('exact borg patterns: pf: for plain paths, an escaped anchored regex where borg would strip or split the line', () => {
  assert.equal(exactPatternLine('app/data/a b[1]*?'), '+ pf:app/data/a b[1]*?');
  assert.equal(exactPatternLine('app/data/trail '), '+ re:^app/data/trail\\x20$');
  assert.equal(exactPatternLine('app/data/ lead'), '+ pf:app/data/ lead'); // borg strips the line's ends only
  assert.equal(exactPatternLine('app/d.x/new\nline'), '+ re:^app/d\\x2ex/new\\x0aline$');
  assert.equal(exactPatternLine('app/é\t'), '+ re:^app/\\xe9\\x09$');
  assert.equal(buildExactPatterns('app/data/', ['.', 'x']), '+ pf:app/data\n+ pf:app/data/x\n- *\n');
});
