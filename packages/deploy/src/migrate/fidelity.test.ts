import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '@deploykit/host';
import {
  applyFidelity,
  applyMtimes,
  compareFidelity,
  compareMtimes,
  isFidelityTrivial,
  keepSubsecondMtimes,
  scanFidelity,
  scanMtimes,
  scanVolumeMetadata,
} from './fidelity.js';

const host = new LocalHost();

async function sh(command: string, cwd: string): Promise<void> {
  const result = await host.run({
    argv: ['bash', '-c', command],
    cwd,
    env: { BORG_PASSPHRASE: '', BORG_BASE_DIR: join(cwd, '.borg') },
  });
  assert.equal(result.exitCode, 0, `${command}: ${result.stderr}`);
}

test('what borg export-tar loses is found, carried and proven: xattrs, ACLs, mtimes after 2038, sparse files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-fidelity-'));
  try {
    const volume = join(dir, 'v');
    await mkdir(join(volume, 'sub dir'), { recursive: true });
    await writeFile(join(volume, 'sub dir', 'tagged.txt'), 'hello');
    await writeFile(join(volume, 'plain.txt'), 'plain');
    await sh(
      [
        "setfattr -n user.color -v blue 'v/sub dir/tagged.txt'",
        'setfacl -m u:nobody:r v/plain.txt',
        "touch -d '2050-01-01T00:00:00Z' v/plain.txt",
        'truncate -s 64M v/sparse.img && printf x >> v/sparse.img && touch -d 2020-05-05T10:00:00Z v/sparse.img',
        'borg init -e none repo && borg create repo::a v',
        'mkdir out && borg export-tar repo::a - | tar -x -C out --numeric-owner -p 2>/dev/null',
      ].join(' && '),
      dir,
    );
    const source = await scanFidelity(host, volume);
    assert.equal(source.xattrFiles, 1);
    assert.equal(source.aclFiles, 1);
    assert.deepEqual(
      source.lateMtimes.map(([path]) => path),
      ['plain.txt'],
    );
    assert.deepEqual(source.sparseFiles, ['sparse.img']);
    assert.equal(isFidelityTrivial(source), false);

    const extracted = join(dir, 'out', 'v');
    const before = await scanFidelity(host, extracted);
    // The loss is real: without the side channel the target differs in all three ways.
    assert.equal(compareFidelity(source, before).length, 3);
    assert.ok((await stat(join(extracted, 'sparse.img'))).blocks * 512 > 60 * 1024 * 1024);

    await applyFidelity(host, extracted, source);
    const after = await scanFidelity(host, extracted);
    assert.deepEqual(compareFidelity(source, after), []);
    assert.ok((await stat(join(extracted, 'sparse.img'))).blocks * 512 < 1024 * 1024, 'holes dug again');
    assert.equal((await stat(join(extracted, 'plain.txt'))).mtime.toISOString(), '2050-01-01T00:00:00.000Z');
    assert.equal(
      (await stat(join(extracted, 'sparse.img'))).mtime.toISOString(),
      '2020-05-05T10:00:00.000Z',
      'digging holes keeps the mtime',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('carried metadata is never applied through a symlink: ACLs, xattrs, holes and mtimes stay inside the volume', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-fidelity-'));
  try {
    // The target volume as the tar guard let it through: links carried verbatim, one of them to a
    // root-only directory outside, one to a file outside.
    await sh(
      [
        'mkdir -p outside vol/real && echo secret > outside/secret && chmod 0600 outside/secret outside && chmod 0700 outside',
        "printf 'x%.0s' {1..10} > outside/big && touch -d '2001-02-03 04:05:06' outside/secret outside/big outside",
        'echo ok > vol/real/file',
        `ln -s ${join(dir, 'outside')} vol/away && ln -s ${join(dir, 'outside', 'secret')} vol/secret-link && ln -s ../outside vol/up`,
      ].join(' && '),
      dir,
    );
    const outsideBefore = await host.run({
      argv: ['bash', '-c', 'stat -c "%n %a %Y %s %b" outside outside/*; getfattr -R -d -m - -h outside'],
      cwd: dir,
    });
    const volume = join(dir, 'vol');
    const acl = (path: string): string =>
      `# file: ${path}\nsystem.posix_acl_access=0sAgAAAAEABgD/////AgAEAGUAAAAEAAQA/////xAABAD/////IAAAAP////8=\nuser.owned=0sMQ==\n`;
    const base = { xattrDump: '', xattrFiles: 0, aclFiles: 0, lateMtimes: [], sparseFiles: [] };
    const hostile: [string, Parameters<typeof applyFidelity>[2], RegExp][] = [
      [
        'an ACL through a symlinked dir',
        { ...base, xattrDump: `${acl('real/file')}\n${acl('away/secret')}`, aclFiles: 2 },
        /"away\/secret", a path through the symlink "away"/,
      ],
      [
        'an ACL through a relative link climbing out',
        { ...base, xattrDump: acl('up/secret'), aclFiles: 1 },
        /a path through the symlink "up"/,
      ],
      [
        'an escaped path through a link',
        { ...base, xattrDump: acl('aw\\141y/secret'), aclFiles: 1 },
        /a path through the symlink "away"/,
      ],
      [
        'a late mtime through a symlink',
        { ...base, lateMtimes: [['away/secret', '2600000000']] },
        /a path through the symlink "away"/,
      ],
      ['a late mtime with ..', { ...base, lateMtimes: [['../outside/secret', '2600000000']] }, /a "\.\." component/],
      ['a sparse file through a symlink', { ...base, sparseFiles: ['away/big'] }, /a path through the symlink "away"/],
      ['a sparse file that is a symlink', { ...base, sparseFiles: ['secret-link'] }, /not a regular file here/],
    ];
    for (const [what, metadata, message] of hostile) {
      await assert.rejects(applyFidelity(host, volume, metadata), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'METADATA_PATH_UNSAFE', what);
        assert.match(error.message, message, what);
        return true;
      });
    }
    // A late mtime on a link itself changes the link, not what it points at.
    await applyFidelity(host, volume, { ...base, lateMtimes: [['secret-link', '2600000000']] });
    const linkTime = await host.run({ argv: ['stat', '-c', '%Y', 'vol/secret-link'], cwd: dir });
    assert.equal(linkTime.stdout.trim(), '2600000000');
    const outsideAfter = await host.run({
      argv: ['bash', '-c', 'stat -c "%n %a %Y %s %b" outside outside/*; getfattr -R -d -m - -h outside'],
      cwd: dir,
    });
    assert.equal(outsideAfter.stdout, outsideBefore.stdout);
    assert.equal((await stat(join(dir, 'outside', 'secret'))).mode & 0o7777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sub-second mtimes of files, directories and symlinks and the volume root (mode, owner, mtime, xattr) survive export-tar, exactly', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-fidelity-'));
  try {
    await sh(
      [
        'mkdir -p v/sub/deeper outside && printf a > v/a.txt && printf b > v/sub/deeper/b.txt && printf o > outside/target.txt',
        'ln -s /etc/hostname v/abs && ln -s sub/deeper v/rel && ln -s ../outside/target.txt v/escape',
        "touch -d '2024-01-02 03:04:05.123456789' v/a.txt v/sub/deeper/b.txt",
        "touch -h -d '2024-01-02 03:04:06.987654321' v/abs v/rel v/escape",
        "touch -d '2024-01-03 00:00:00.000000001' v/sub/deeper && touch -d '2024-01-03 00:00:01.5' v/sub",
        "chmod 2751 v && setfattr -n user.root -v yes v && touch -d '2023-06-07 08:09:10.111222333' v",
        "touch -d '2022-02-02 02:02:02.999999999' outside/target.txt",
        'borg init -e none repo && borg create repo::a v',
        'mkdir out && borg export-tar --strip-components=1 repo::a - v | tar -x -C out --numeric-owner -p',
      ].join(' && '),
      dir,
    );
    const volume = join(dir, 'v');
    const out = join(dir, 'out');
    const source = await scanFidelity(host, volume);
    const ns = new Map(source.subsecondMtimes);
    assert.equal(ns.get('a.txt'), '1704164645123456789');
    assert.equal(ns.get('abs'), '1704164646987654321', 'symlinks carry their own mtime');
    assert.equal(ns.get('sub/deeper'), '1704240000000000001');
    assert.deepEqual(source.root, { mode: 0o2751, uid: 0, gid: 0, mtimeNs: '1686125350111222333' });
    assert.match(source.xattrDump, /# file: \.\nuser\.root=/, "the root's xattrs are in the dump");
    // A cutover's scan: the same fidelity from one walk that also gives every entry's mtime.
    const combined = await scanVolumeMetadata(host, volume, { allMtimes: true });
    assert.deepEqual(combined.fidelity, source);
    assert.deepEqual(combined.allMtimes, (await scanMtimes(host, volume, true)).mtimes);

    // The loss is real: tar restored whole seconds and nothing of the root.
    const lost = await scanMtimes(host, out, true);
    assert.equal(new Map(lost.mtimes).get('a.txt'), '1704164645000000000');
    assert.ok(
      compareMtimes(source, lost, { owner: true }).length >= 2,
      compareMtimes(source, lost, { owner: true }).join('; '),
    );

    // The archive holds a newer a.txt than the scan saw (changed between scan and backup): tar's time stays.
    await sh("touch -d '2024-01-02 03:04:09' out/a.txt", dir);
    await applyFidelity(host, out, source);
    const after = await scanMtimes(host, out, true);
    const got = new Map(after.mtimes);
    assert.equal(
      got.get('a.txt'),
      '1704164649000000000',
      "a carried mtime whose seconds differ from the archive's is not applied",
    );
    for (const path of ['sub/deeper/b.txt', 'abs', 'rel', 'escape', 'sub', 'sub/deeper'])
      assert.equal(got.get(path), ns.get(path), path);
    assert.deepEqual(after.root, source.root);
    assert.deepEqual(compareMtimes(source, after, { owner: true }), [], 'a.txt (seconds differ) is not a difference');
    const outsideAfter = await stat(join(dir, 'outside', 'target.txt'), { bigint: true });
    assert.equal(outsideAfter.mtimeNs, 1643767322999999999n, 'the symlink "escape" was never followed');
    assert.deepEqual(compareFidelity(source, await scanFidelity(host, out)), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ns mtimes are never applied through a symlinked parent, and a wrong sub-second mtime is a verification difference', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dk-fidelity-'));
  try {
    await sh(
      "mkdir -p v outside && printf x > outside/f && ln -s ../outside v/link && touch -d '2020-01-01 00:00:00' outside/f",
      dir,
    );
    const before = await stat(join(dir, 'outside', 'f'), { bigint: true });
    await assert.rejects(
      applyMtimes(host, join(dir, 'v'), { subsecondMtimes: [['link/f', '1577836800500000000']] }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'METADATA_PATH_UNSAFE');
        assert.match(error.message, /a path through "link", which is a symlink/);
        return true;
      },
    );
    assert.equal((await stat(join(dir, 'outside', 'f'), { bigint: true })).mtimeNs, before.mtimeNs);
    await assert.rejects(
      applyMtimes(host, join(dir, 'v'), { subsecondMtimes: [['../outside/f', '1577836800500000000']] }),
      /not a relative path below the volume/,
    );
    const source = { subsecondMtimes: [['f', '1577836800500000000']] as [string, string][] };
    const target = {
      mtimes: [['f', '1577836800400000000']] as [string, string][],
      root: { mode: 0o755, uid: 0, gid: 0, mtimeNs: '0' },
    };
    assert.match(
      compareMtimes(source, target, { owner: true }).join(),
      /1 modification times differ below the second \("f"\)/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('keepSubsecondMtimes keeps the entries with a sub-second part, in order, exactly (no float rounding)', () => {
  assert.deepEqual(
    keepSubsecondMtimes([
      ['a', '1704164645123456789'],
      ['b', '1704164645000000000'],
      ['c', '1'],
      ['d', '0'],
      ['e', '-1000000001'],
      ['f', '9007199254740993000000000'],
      ['g', '9007199254740993000000001'],
    ]),
    [
      ['a', '1704164645123456789'],
      ['c', '1'],
      ['e', '-1000000001'],
      ['g', '9007199254740993000000001'],
    ],
  );
});
