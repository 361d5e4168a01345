import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TransportError } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import { TarGuard } from './tar-guard.js';

const host = new LocalHost();
let work = '';

/** Runs a bash script in the work dir; fails the test on a non-zero exit. */
async function sh(script: string): Promise<string> {
  const result = await host.run({ argv: ['bash', '-euo', 'pipefail', '-c', script], cwd: work, env: { BORG_PASSPHRASE: '', BORG_BASE_DIR: join(work, 'borg-base') } });
  assert.equal(result.exitCode, 0, `${script}\n${result.stderr}`);
  return result.stdout;
}

/** Feeds bytes through a TarGuard in pieces; returns what came out and the error, if any. */
async function guard(bytes: Buffer, pieceSize = 1000): Promise<{ out: Buffer; error?: TransportError; tarGuard: TarGuard }> {
  const tarGuard = new TarGuard();
  const out: Buffer[] = [];
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += pieceSize) pieces.push(bytes.subarray(offset, offset + pieceSize));
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk);
      callback();
    },
  });
  try {
    await pipeline(Readable.from(pieces), tarGuard, sink);
    return { out: Buffer.concat(out), tarGuard };
  } catch (error) {
    assert.ok(error instanceof TransportError, `expected a TransportError, got ${String(error)}`);
    return { out: Buffer.concat(out), error, tarGuard };
  }
}

const LONG = 'a-rather-long-directory-name-that-pushes-the-path-beyond-one-hundred-characters';

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'tar-guard-'));
  // A folder with odd names, a long path, hard links and safe symlinks.
  await sh(`
    mkdir -p src/sub/deeper "src/with space" "src/ünïcödé" "src/${LONG}/${LONG}"
    echo one > src/sub/file
    printf 'x%.0s' {1..3000} > "src/with space/big file.txt"
    echo tab > "src/ünïcödé/tab	name"
    echo long > "src/${LONG}/${LONG}/leaf.txt"
    ln src/sub/file src/sub/hardlink
    ln -s sub/file src/link-to-file
    ln -s ../file src/sub/deeper/up-one
    ln -s "${LONG}/${LONG}/leaf.txt" src/long-symlink
    ln -s . src/sub/self
  `);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

for (const format of ['gnu', 'posix']) {
  test(`a GNU tar --format=${format} archive passes through unchanged with every entry counted`, async () => {
    await sh(`tar --format=${format} -C src -cf ${format}.tar .`);
    const archive = await readFile(join(work, `${format}.tar`));
    const expected = Number((await sh(`tar -tf ${format}.tar | wc -l`)).trim());
    for (const piece of [1, 511, 4096, 1 << 20]) {
      if (piece === 1 && archive.length > 200000) continue;
      const { out, error, tarGuard } = await guard(archive, piece);
      assert.equal(error, undefined);
      assert.ok(out.equals(archive));
      assert.equal(tarGuard.entries, expected);
      assert.equal(tarGuard.bytes, archive.length);
      assert.equal(tarGuard.sawRootEntry, true);
      assert.equal(tarGuard.ended, true);
    }
  });
}

test('a borg export-tar archive passes through unchanged', async () => {
  await sh(`
    borg init -e none repo >/dev/null 2>&1
    (cd src && borg create ../repo::one . 2>/dev/null)
    borg export-tar repo::one borg.tar
  `);
  const archive = await readFile(join(work, 'borg.tar'));
  const expected = Number((await sh('tar -tf borg.tar | wc -l').then((s) => s.trim())));
  const { out, error, tarGuard } = await guard(archive, 777);
  assert.equal(error, undefined);
  assert.ok(out.equals(archive));
  assert.equal(tarGuard.entries, expected);
  assert.ok(expected >= 12);
});

test('a base-256 size field is read like the octal one', async () => {
  await sh('mkdir -p b256 && printf hello > b256/f && tar --format=gnu -C b256 -cf b256.tar f');
  const archive = Buffer.from(await readFile(join(work, 'b256.tar')));
  archive.fill(0, 124, 136);
  archive[124] = 0x80;
  archive[135] = 5;
  archive.fill(0x20, 148, 156);
  let sum = 0;
  for (let index = 0; index < 512; index += 1) sum += archive[index]!;
  archive.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const { error, tarGuard } = await guard(archive);
  assert.equal(error, undefined);
  assert.equal(tarGuard.entries, 1);
  assert.equal(tarGuard.ended, true);
  // GNU tar agrees that this is the same archive.
  const listed = await host.run({ argv: ['tar', '-tvf', '-'], input: archive });
  assert.match(listed.stdout, / 5 .* f\n/);
});

/** Builds an archive in the work dir and returns the guard's verdict. */
async function verdict(script: string, file: string): Promise<TransportError | undefined> {
  await sh(script);
  return (await guard(await readFile(join(work, file)))).error;
}

const hostile: Record<string, { script: string; file: string; entry: RegExp }> = {
  'absolute path (tar -P)': {
    script: 'mkdir -p abs && echo x > abs/f && tar -P -cf abs.tar "$PWD/abs/f"',
    file: 'abs.tar',
    entry: /refusing tar entry "\/.*abs\/f": absolute path/,
  },
  'a ../ path (--transform)': {
    script: "mkdir -p dotdot && echo x > dotdot/f && tar -C dotdot --transform 's,^,../,' -cf dotdot.tar f",
    file: 'dotdot.tar',
    entry: /"\.\.\/f": path has a "\.\." component/,
  },
  'a long ../ path in a GNU L record': {
    script: `mkdir -p "gl/${LONG}" && echo x > "gl/${LONG}/f" && tar --format=gnu -C gl --transform 's,^,x/../../,' -cf gl.tar "${LONG}/f"`,
    file: 'gl.tar',
    entry: /"x\/\.\.\/\.\.\/a-rather-long.*": path has a "\.\." component/,
  },
  'a long ../ path in a pax record': {
    script: `mkdir -p "px/${LONG}" && echo x > "px/${LONG}/f" && tar --format=posix -C px --transform 's,^,../,' -cf px.tar "${LONG}/f"`,
    file: 'px.tar',
    entry: /"\.\.\/a-rather-long.*": path has a "\.\." component/,
  },
  'a symlink to /etc': {
    script: 'mkdir -p se && ln -sfn /etc se/etc && tar -C se -cf se.tar etc',
    file: 'se.tar',
    entry: /"etc": symlink to absolute path "\/etc"/,
  },
  'a relative symlink climbing out': {
    script: 'mkdir -p sr/sub && ln -sfn ../../outside sr/sub/esc && tar -C sr -cf sr.tar sub',
    file: 'sr.tar',
    entry: /"sub\/esc": symlink target "\.\.\/\.\.\/outside" resolves outside/,
  },
  'a symlink escaping through another symlink': {
    script: 'mkdir -p sc/deep && ln -sfn .. sc/deep/l && ln -sfn deep/l/.. sc/l2 && tar -C sc -cf sc.tar deep l2',
    file: 'sc.tar',
    entry: /"l2": symlink target "deep\/l\/\.\." resolves outside/,
  },
  'a hard link to a ../ target': {
    script: "mkdir -p hl && echo x > hl/f && ln -f hl/f hl/h && tar -P -C hl --transform 's,^f$,../f,RSh' -cf hl.tar f h",
    file: 'hl.tar',
    entry: /"h": hard link target "\.\.\/f" has a "\.\." component/,
  },
  'a hard link to an absolute target': {
    script: "mkdir -p ha && echo x > ha/f && ln -f ha/f ha/h && tar -P -C ha --transform 's,^f$,/etc/passwd,RSh' -cf ha.tar f h",
    file: 'ha.tar',
    entry: /"h": hard link to absolute path "\/etc\/passwd"/,
  },
  'a file written through a symlink from the same archive': {
    script: "mkdir -p wt/sub wt/e && ln -sfn sub wt/d && echo x > wt/e/x && tar -C wt --transform 's,^e/x$,d/x,' -cf wt.tar d e",
    file: 'wt.tar',
    entry: /"d\/x": path goes through the symlink "d"/,
  },
};

for (const [name, { script, file, entry }] of Object.entries(hostile)) {
  test(`refuses ${name} with TAR_UNSAFE_ENTRY naming the entry`, async () => {
    const error = await verdict(script, file);
    assert.equal(error?.code, 'TAR_UNSAFE_ENTRY');
    assert.match(error?.message ?? '', entry);
  });
}

test('bytes that are not a tar archive fail with TAR_GARBAGE', async () => {
  const { error } = await guard(Buffer.alloc(2048, 'not a tar archive at all '));
  assert.equal(error?.code, 'TAR_GARBAGE');
});

test('the offending header is never passed on', async () => {
  await sh("mkdir -p np && echo x > np/a && echo y > np/b && tar -C np --transform 's,^b$,../b,' -cf np.tar a b");
  const archive = await readFile(join(work, 'np.tar'));
  const { out, error } = await guard(archive, 1 << 20);
  assert.equal(error?.code, 'TAR_UNSAFE_ENTRY');
  assert.equal(out.length, 0);
});
