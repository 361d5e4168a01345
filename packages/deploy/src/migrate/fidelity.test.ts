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
