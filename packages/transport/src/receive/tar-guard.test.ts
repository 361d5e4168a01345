import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TransportError } from '@deploykit/core';
import { LocalHost } from '@deploykit/host';
import { buildExtractArgv } from './receiver.js';
import { TarGuard, type TarGuardOptions } from './tar-guard.js';

const host = new LocalHost();
let work = '';

/** Runs a bash script in the work dir; fails the test on a non-zero exit. */
async function sh(script: string): Promise<string> {
  const result = await host.run({
    argv: ['bash', '-euo', 'pipefail', '-c', script],
    cwd: work,
    env: { BORG_PASSPHRASE: '', BORG_BASE_DIR: join(work, 'borg-base') },
  });
  assert.equal(result.exitCode, 0, `${script}\n${result.stderr}`);
  return result.stdout;
}

/** Feeds bytes through a TarGuard in pieces; returns what came out and the error, if any. */
async function guard(
  bytes: Buffer,
  pieceSize = 1000,
  options: TarGuardOptions = {},
): Promise<{ out: Buffer; error?: TransportError; tarGuard: TarGuard }> {
  const tarGuard = new TarGuard(options);
  const out: Buffer[] = [];
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += pieceSize)
    pieces.push(bytes.subarray(offset, offset + pieceSize));
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
  const expected = Number(await sh('tar -tf borg.tar | wc -l').then((s) => s.trim()));
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
  'a hard link to a ../ target': {
    script:
      "mkdir -p hl && echo x > hl/f && ln -f hl/f hl/h && tar -P -C hl --transform 's,^f$,../f,RSh' -cf hl.tar f h",
    file: 'hl.tar',
    entry: /"h": hard link target "\.\.\/f" has a "\.\." component/,
  },
  'a hard link to an absolute target': {
    script:
      "mkdir -p ha && echo x > ha/f && ln -f ha/f ha/h && tar -P -C ha --transform 's,^f$,/etc/passwd,RSh' -cf ha.tar f h",
    file: 'ha.tar',
    entry: /"h": hard link to absolute path "\/etc\/passwd"/,
  },
  'a file written through a symlink from the same archive': {
    script:
      "mkdir -p wt/sub wt/e && ln -sfn sub wt/d && echo x > wt/e/x && tar -C wt --transform 's,^e/x$,d/x,' -cf wt.tar d e",
    file: 'wt.tar',
    entry: /"d\/x": path goes through the symlink "d"/,
  },
  'a file written through an absolute symlink from the same archive': {
    script:
      "mkdir -p wa/e && ln -sfn /tmp wa/d && echo x > wa/e/x && tar -C wa --transform 's,^e/x$,d/x,' -cf wa.tar d e",
    file: 'wa.tar',
    entry: /"d\/x": path goes through the symlink "d"/,
  },
  'a file written deep below a symlinked dir': {
    script:
      "mkdir -p wd/e/f/g && ln -sfn e wd/d && echo x > wd/e/f/g/x && tar -C wd --transform 's,^e/f,d/f,' -cf wd.tar d e/f",
    file: 'wd.tar',
    entry: /"d\/f\/": path goes through the symlink "d"/,
  },
  'a file written through a hard link to a symlink': {
    script:
      "mkdir -p hs/sub hs/e && ln -sfn sub hs/l && ln -fP hs/l hs/h && echo x > hs/e/x && tar -C hs --transform 's,^e/x$,h/x,' -cf hs.tar l h e/x",
    file: 'hs.tar',
    entry: /"h\/x": path goes through the symlink "h"/,
  },
  'a hard link whose target goes through a symlink': {
    script:
      "mkdir -p hv/sub && echo x > hv/sub/f && ln -f hv/sub/f hv/h && ln -sfn sub hv/d && tar -C hv --transform 's,^sub/f$,d/f,RSh' -cf hv.tar d sub/f h",
    file: 'hv.tar',
    entry: /hard link target goes through the symlink "d"/,
  },
  'a regular file on the path of an earlier symlink': {
    script:
      "mkdir -p rs/sub && echo secret > rs/sub/f && ln -sfn sub/f rs/l && echo new > rs/n && tar -C rs --transform 's,^n$,l,' -cf rs.tar l n",
    file: 'rs.tar',
    entry: /"l": the archive already holds a symlink at this path/,
  },
  'a directory on the path of an earlier symlink': {
    script: "mkdir -p rd/dd && ln -sfn /etc rd/l && tar -C rd --transform 's,^dd$,l,' -cf rd.tar l dd",
    file: 'rd.tar',
    entry: /"l\/": the archive already holds a symlink at this path/,
  },
};

for (const [name, { script, file, entry }] of Object.entries(hostile)) {
  test(`refuses ${name} with TAR_UNSAFE_ENTRY naming the entry`, async () => {
    const error = await verdict(script, file);
    assert.equal(error?.code, 'TAR_UNSAFE_ENTRY');
    assert.match(error?.message ?? '', entry);
  });
}

for (const [kind, make, expected] of [
  [
    'a FIFO',
    'mkfifo dv/fifo',
    /refusing tar entry "fifo": a FIFO \(not declared; device nodes and FIFOs are carried only when the app declares them\)/,
  ],
  ['a character device', 'mknod dv/null c 1 3', /refusing tar entry "null": a character device/],
  ['a block device', 'mknod dv/loop b 7 200', /refusing tar entry "loop": a block device/],
] as const) {
  test(`refuses ${kind} with TAR_SPECIAL_FILE naming the entry`, async () => {
    await sh(`rm -rf dv && mkdir -p dv && echo x > dv/a && ${make} && tar -C dv -cf dv.tar a $(ls dv | grep -v '^a$')`);
    const error = await verdict('true', 'dv.tar');
    assert.equal(error?.code, 'TAR_SPECIAL_FILE');
    assert.match(error?.message ?? '', expected);
    assert.match(
      error?.hint ?? '',
      /declare it in app\.yaml under the volume: special_files: \[\{ path: "(fifo|null|loop)", type: (fifo|char|block) \}\]/,
    );
  });
}

/** A volume with a FIFO, a char device and a block device (odd modes and owners) archived like export-tar does (`./` names). */
async function specialArchive(): Promise<void> {
  await sh(`
    rm -rf sp && mkdir -p sp/run sp/dev && echo x > sp/file
    mkfifo -m 0620 sp/run/queue.fifo && chown 4001:4002 sp/run/queue.fifo
    mknod -m 0640 sp/dev/null c 1 3 && chown 4003:4004 sp/dev/null
    mknod -m 0600 sp/dev/loop b 7 200
    tar -C sp -cf sp.tar .
  `);
}

const DECLARED = [
  { path: 'run/queue.fifo', type: 'fifo' },
  { path: 'dev/null', type: 'char' },
  { path: 'dev/loop', type: 'block' },
] as const;

test('declared special files (exact path and type) pass and tar -x creates them with mode, owner, major and minor', async () => {
  await specialArchive();
  const { out, error, tarGuard } = await guard(await readFile(join(work, 'sp.tar')), 777, {
    specialFiles: DECLARED,
    allowDevices: true,
  });
  assert.equal(error, undefined, error?.message);
  assert.equal(tarGuard.specialFiles, 3);
  await sh('rm -rf sp-out && mkdir sp-out');
  const result = await host.run({ argv: buildExtractArgv(join(work, 'sp-out')), input: out });
  assert.equal(result.exitCode, 0, result.stderr);
  // %F type, %a mode, %u:%g owner, %t:%T major:minor in hex.
  const stat = await sh("cd sp-out && stat -c '%n|%F|%a|%u:%g|%t:%T' run/queue.fifo dev/null dev/loop");
  assert.deepEqual(stat.trim().split('\n'), [
    'run/queue.fifo|fifo|620|4001:4002|0:0',
    'dev/null|character special file|640|4003:4004|1:3',
    'dev/loop|block special file|600|0:0|7:c8',
  ]);
});

for (const [name, options, entry, reason] of [
  [
    'an undeclared FIFO next to declared devices',
    { specialFiles: DECLARED.slice(1), allowDevices: true },
    'run/queue.fifo',
    /a FIFO \(not declared;/,
  ],
  [
    'a FIFO declared as a char device',
    { specialFiles: [{ path: 'run/queue.fifo', type: 'char' }, ...DECLARED.slice(1)], allowDevices: true },
    'run/queue.fifo',
    /a FIFO \(declared as char;/,
  ],
  [
    'a char device declared as a block device',
    { specialFiles: [DECLARED[0], { path: 'dev/null', type: 'block' }, DECLARED[2]], allowDevices: true },
    'dev/null',
    /a character device \(declared as block;/,
  ],
  [
    'a declared device when the target does not run as root',
    { specialFiles: DECLARED },
    'dev/(null|loop)',
    /device \(declared, but devices are only created by root;/,
  ],
  [
    'a declaration of another path (run/queue.fifo.bak)',
    { specialFiles: [{ path: 'run/queue.fifo.bak', type: 'fifo' }, ...DECLARED.slice(1)], allowDevices: true },
    'run/queue.fifo',
    /a FIFO \(not declared;/,
  ],
] as const) {
  test(`refuses ${name} with TAR_SPECIAL_FILE`, async () => {
    await specialArchive();
    const { error } = await guard(await readFile(join(work, 'sp.tar')), 1000, options as TarGuardOptions);
    assert.equal(error?.code, 'TAR_SPECIAL_FILE');
    assert.match(error?.message ?? '', new RegExp(`refusing tar entry "\\./${entry}": `));
    assert.match(error?.message ?? '', reason);
  });
}

/** Guards an archive and extracts what passed with the receive path's GNU tar argv; returns the guard's error. */
async function guardAndExtract(file: string, into: string): Promise<TransportError | undefined> {
  const { out, error } = await guard(await readFile(join(work, file)), 4096);
  await sh(`rm -rf ${into} && mkdir -p ${into}`);
  const result = await host.run({ argv: buildExtractArgv(join(work, into)), input: out });
  if (error === undefined) assert.equal(result.exitCode, 0, result.stderr);
  return error;
}

test('absolute, dangling, climbing and chained symlinks are carried verbatim and nothing outside is touched', async () => {
  // A canary outside the extraction dir, with a mode, an ACL and an mtime that must not change.
  await sh(`
    rm -rf vb outside && mkdir -p vb/sub outside && echo canary > outside/canary && chmod 0600 outside/canary
    setfacl -m u:nobody:r outside/canary && touch -d '2001-02-03 04:05:06' outside/canary outside
    ln -s /etc/hostname vb/current
    ln -s ${JSON.stringify(join(work, 'outside', 'canary'))} vb/abs-canary
    ln -s does/not/exist vb/dangling
    ln -s ../../outside vb/sub/climb
    ln -s . vb/c0
    python3 -c 'import os; [os.symlink(f"c{i - 1}", f"vb/c{i}") for i in range(1, 1001)]'
    echo data > vb/sub/file
  `);
  // Order trick: "a" is archived first pointing at b/c while b is still a directory on its way;
  // a later entry makes b a symlink that points outside, changing where "a" resolves.
  await sh(`
    mkdir -p vb-order/b && echo inner > vb-order/b/c && ln -s b/c vb-order/a
    mkdir -p vb-order2 && ln -s ${JSON.stringify(join(work, 'outside'))} vb-order2/b
    tar -C vb -cf vb.tar . && tar -C vb-order -rf vb.tar a && tar -C vb-order2 -rf vb.tar b
  `);
  const canaryBefore = await sh('stat -c "%a %Y %s %i" outside/canary outside && getfacl -p outside/canary');
  const error = await guardAndExtract('vb.tar', 'vb-out');
  assert.equal(error, undefined);
  const links = (dir: string): Promise<string> => sh(`cd ${dir} && find . -type l -printf '%p -> %l\n' | sort`);
  const expected = `${await links('vb')}`;
  const got = await links('vb-out');
  for (const line of expected.split('\n').filter(Boolean)) assert.ok(got.includes(`${line}\n`), `missing ${line}`);
  assert.match(got, /^\.\/current -> \/etc\/hostname$/m);
  assert.match(got, /^\.\/a -> b\/c$/m);
  assert.match(got, new RegExp(`^\\./b -> ${join(work, 'outside').replace(/[/.]/g, '\\$&')}$`, 'm'));
  assert.match(got, /^\.\/c1000 -> c999$/m);
  assert.equal((await sh('find vb-out -type l | wc -l')).trim(), String(1005 + 2));
  // Every link is itself a link in the result (lstat), never a copy of what it points at.
  assert.equal((await sh('cat vb-out/sub/file')).trim(), 'data');
  assert.equal(await sh('stat -c "%a %Y %s %i" outside/canary outside && getfacl -p outside/canary'), canaryBefore);
  assert.equal((await sh('ls outside')).trim(), 'canary');
});

test('exponential symlinks (s0 -> ., each next one -> the previous, repeated) are checked in linear time', async () => {
  // Each link's target is ~200 bytes of the previous link's name repeated: resolving it naively
  // doubles the work per link (the old guard took minutes with 15 of them).
  const links = 40;
  let script = 'rm -rf ex && mkdir ex && ln -s . ex/s0\n';
  for (let index = 1; index < links; index += 1) {
    const previous = `s${index - 1}`;
    script += `ln -s ${Array.from({ length: Math.floor(200 / (previous.length + 1)) }, () => previous).join('/')} ex/s${index}\n`;
  }
  await sh(`${script} tar -C ex -cf ex.tar .`);
  const archive = await readFile(join(work, 'ex.tar'));
  const started = performance.now();
  const { error, tarGuard } = await guard(archive, 65536);
  const elapsed = performance.now() - started;
  console.log(`exponential symlinks: ${links} links checked in ${elapsed.toFixed(1)} ms`);
  assert.equal(error, undefined);
  assert.equal(tarGuard.symlinks, links);
  assert.ok(elapsed < 2000, `took ${elapsed} ms`);
  assert.equal(await guardAndExtract('ex.tar', 'ex-out'), undefined);
  assert.equal((await sh('readlink ex-out/s0')).trim(), '.');
});

test('100k entries with 10k symlinks (chains 1,000 deep, exponential ones) are checked in seconds', async () => {
  await sh(`
    rm -rf big && mkdir -p big && cd big
    python3 - <<'PY'
import os
for d in range(100):
    os.mkdir(f"d{d}")
    for f in range(899):
        open(f"d{d}/f{f}", "w").close()
for chain in range(10):
    os.mkdir(f"l{chain}")
    os.symlink(".", f"l{chain}/s0")
    for i in range(1, 1000):
        os.symlink("/".join([f"s{i-1}"] * 30), f"l{chain}/s{i}")
PY
    cd .. && tar -C big -cf big.tar .
  `);
  const archive = await readFile(join(work, 'big.tar'));
  const started = performance.now();
  const { error, tarGuard } = await guard(archive, 65536);
  const elapsed = performance.now() - started;
  console.log(
    `100k entries: ${tarGuard.entries} entries, ${tarGuard.symlinks} symlinks, ${archive.length} bytes checked in ${elapsed.toFixed(0)} ms`,
  );
  assert.equal(error, undefined);
  assert.equal(tarGuard.symlinks, 10000);
  assert.ok(tarGuard.entries >= 100000, `${tarGuard.entries} entries`);
  // Generous for a loaded 2-core machine; the exponential resolver never finished at all.
  assert.ok(elapsed < 20000, `took ${elapsed} ms`);
});

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
