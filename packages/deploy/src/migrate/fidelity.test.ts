import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '@deploykit/host';
import { applyFidelity, compareFidelity, isFidelityTrivial, scanFidelity } from './fidelity.js';

const host = new LocalHost();

async function sh(command: string, cwd: string): Promise<void> {
  const result = await host.run({ argv: ['bash', '-c', command], cwd, env: { BORG_PASSPHRASE: '', BORG_BASE_DIR: join(cwd, '.borg') } });
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
    assert.deepEqual(source.lateMtimes.map(([path]) => path), ['plain.txt']);
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
    assert.equal((await stat(join(extracted, 'sparse.img'))).mtime.toISOString(), '2020-05-05T10:00:00.000Z', 'digging holes keeps the mtime');
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
    const outsideBefore = await host.run({ argv: ['bash', '-c', 'stat -c "%n %a %Y %s %b" outside outside/*; getfattr -R -d -m - -h outside'], cwd: dir });
    const volume = join(dir, 'vol');
    const acl = (path: string): string => `# file: ${path}\nsystem.posix_acl_access=0sAgAAAAEABgD/////AgAEAGUAAAAEAAQA/////xAABAD/////IAAAAP////8=\nuser.owned=0sMQ==\n`;
    const base = { xattrDump: '', xattrFiles: 0, aclFiles: 0, lateMtimes: [], sparseFiles: [] };
    const hostile: [string, Parameters<typeof applyFidelity>[2], RegExp][] = [
      ['an ACL through a symlinked dir', { ...base, xattrDump: `${acl('real/file')}\n${acl('away/secret')}`, aclFiles: 2 }, /"away\/secret", a path through the symlink "away"/],
      ['an ACL through a relative link climbing out', { ...base, xattrDump: acl('up/secret'), aclFiles: 1 }, /a path through the symlink "up"/],
      ['an escaped path through a link', { ...base, xattrDump: acl('aw\\141y/secret'), aclFiles: 1 }, /a path through the symlink "away"/],
      ['a late mtime through a symlink', { ...base, lateMtimes: [['away/secret', '2600000000']] }, /a path through the symlink "away"/],
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
    const outsideAfter = await host.run({ argv: ['bash', '-c', 'stat -c "%n %a %Y %s %b" outside outside/*; getfattr -R -d -m - -h outside'], cwd: dir });
    assert.equal(outsideAfter.stdout, outsideBefore.stdout);
    assert.equal((await stat(join(dir, 'outside', 'secret'))).mode & 0o7777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
