import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { borgTimeToEpochMicros } from '../migrate/cutover.js';
import type { BaseEntry, DeltaRecord } from '../migrate/migration-header.js';
import { applyVolumeDelta, compareWithBase } from './apply-delta.js';
import { TargetJournal } from './target-journal.js';
import { undoAll } from './undo-test-support.js';

/** Every entry below dir as "path type detail" lines (content of files, target of links, mode), sorted. */
async function describeTree(dir: string): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    for (const name of (await readdir(join(dir, relative))).sort()) {
      const path = relative === '' ? name : `${relative}/${name}`;
      const full = join(dir, path);
      const stats = await lstat(full);
      if (stats.isSymbolicLink()) lines.push(`${path} -> ${await readlink(full)}`);
      else if (stats.isDirectory()) {
        lines.push(`${path}/ ${(stats.mode & 0o7777).toString(8)}`);
        await walk(path);
      } else lines.push(`${path} ${(stats.mode & 0o7777).toString(8)} ${await readFile(full, 'utf8')}`);
    }
  };
  await walk('');
  return lines;
}

/** The modification time in ns of dir and every directory below it, by path. */
async function directoryTimes(dir: string): Promise<Record<string, string>> {
  const times: Record<string, string> = {};
  const walk = async (relative: string): Promise<void> => {
    times[relative === '' ? '.' : relative] = String((await lstat(join(dir, relative), { bigint: true })).mtimeNs);
    for (const entry of await readdir(join(dir, relative), { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(relative === '' ? entry.name : `${relative}/${entry.name}`);
    }
  };
  await walk('');
  return times;
}

async function withDirs(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'dk-apply-delta-'));
  try {
    await fn(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The copy a migration left: a kept file, a file to change, a tree to remove, a link to re-point, a mode to change, a file that becomes a directory. */
async function makeLive(live: string): Promise<void> {
  await mkdir(join(live, 'gone', 'deeper'), { recursive: true });
  await writeFile(join(live, 'keep.txt'), 'keep');
  await writeFile(join(live, 'change.txt'), 'old');
  await writeFile(join(live, 'gone', 'deeper', 'x.txt'), 'x');
  await symlink('keep.txt', join(live, 'link'));
  await writeFile(join(live, 'mode.txt'), 'mode');
  await chmod(join(live, 'mode.txt'), 0o644);
  await writeFile(join(live, 'typechange'), 'a file before');
  // Directory times the migration set (in the past, as an archive's are); a rename in a directory moves its time to now.
  for (const dir of ['gone/deeper', 'gone', '.'])
    await utimes(join(live, dir), new Date('2020-01-02T03:04:05.678Z'), new Date('2020-01-02T03:04:05.678Z'));
}

/** What the delta part's tar extracts: the changed file, the re-pointed link, a new tree, the new directory. */
async function makeIncoming(incoming: string): Promise<void> {
  await mkdir(join(incoming, 'newdir', 'sub'), { recursive: true });
  await mkdir(join(incoming, 'typechange'), { recursive: true });
  await writeFile(join(incoming, 'change.txt'), 'new content');
  await symlink('change.txt', join(incoming, 'link'));
  await writeFile(join(incoming, 'newdir', 'sub', 'n.txt'), 'n');
  await writeFile(join(incoming, 'typechange', 'inner.txt'), 'inner');
}

function deltaFor(uid: number, gid: number): DeltaRecord {
  return {
    removed: [
      ['gone/deeper/x.txt', 'file'],
      ['gone/deeper', 'dir'],
      ['gone', 'dir'],
      ['typechange', 'file'],
    ],
    sent: ['change.txt', 'link', 'newdir', 'newdir/sub', 'newdir/sub/n.txt', 'typechange', 'typechange/inner.txt'],
    chmod: [['mode.txt', 'file', 0o600, uid, gid]],
    mtimes: [['.', '1700000000123456789']],
    bytes: 17,
    counts: { added: 5, changed: 1, removed: 4, metadata: 2 },
  };
}

test('a delta turns the copy into the final volume in place; its undo log puts every entry back', async () => {
  await withDirs(async (root) => {
    const live = join(root, 'live');
    const incoming = join(root, 'incoming');
    await makeLive(live);
    await makeIncoming(incoming);
    const before = await describeTree(live);
    const timesBefore = await directoryTimes(live);
    const journal = new TargetJournal(join(root, 'run.jsonl'));
    const uid = process.getuid!();
    const gid = process.getgid!();
    const applied = await applyVolumeDelta({
      live,
      incoming,
      undoDir: join(root, 'undo'),
      delta: deltaFor(uid, gid),
      journal,
      asRoot: uid === 0,
    });
    assert.deepEqual(await describeTree(live), [
      'change.txt 644 new content',
      'keep.txt 644 keep',
      'link -> change.txt',
      'mode.txt 600 mode',
      'newdir/ 755',
      'newdir/sub/ 755',
      'newdir/sub/n.txt 644 n',
      'typechange/ 755',
      'typechange/inner.txt 644 inner',
    ]);
    // Moved aside: the three removed entries' top (gone, with its tree), typechange, change.txt, link.
    assert.deepEqual(
      { movedAside: applied.movedAside, placed: applied.placed, modes: applied.modes, mtimes: applied.mtimes },
      { movedAside: 6, placed: 4, modes: 1, mtimes: 1 },
    );
    // Its whole second exactly (the fidelity step's python then sets the nanoseconds, which lutimes cannot).
    assert.equal(Math.floor((await lstat(live)).mtimeMs / 1000), 1700000000, 'the root gets its mtime back');
    const undone = await undoAll(journal);
    assert.deepEqual(undone.failed, []);
    assert.deepEqual(await describeTree(live), before, 'every entry, link target and mode as before');
    assert.deepEqual(
      await directoryTimes(live),
      timesBefore,
      'every directory modification time as before, to the nanosecond',
    );
  });
});

test('the check against the base sees a gone, changed, re-pointed, retyped or new entry; --force extras go aside and come back', async () => {
  await withDirs(async (root) => {
    const live = join(root, 'live');
    await makeLive(live);
    const base: BaseEntry[] = [
      ['change.txt', 'file', 3, null],
      ['gone', 'dir', 0, null],
      ['gone/deeper', 'dir', 0, null],
      ['gone/deeper/x.txt', 'file', 1, null],
      ['keep.txt', 'file', 4, null],
      ['link', 'symlink', 0, 'keep.txt'],
      ['mode.txt', 'file', 4, null],
      ['typechange', 'file', 13, null],
    ];
    assert.deepEqual(await compareWithBase(live, base), []);
    await writeFile(join(live, 'change.txt'), 'longer now');
    await rm(join(live, 'gone', 'deeper', 'x.txt'));
    await rm(join(live, 'link'));
    await symlink('elsewhere', join(live, 'link'));
    await mkdir(join(live, 'extra', 'tree'), { recursive: true });
    await writeFile(join(live, 'extra', 'tree', 'e.txt'), 'e');
    assert.deepEqual(await compareWithBase(live, base), [
      'change.txt: 10 bytes here, 3 in the base',
      'gone/deeper/x.txt: gone',
      'link: points to "elsewhere" here, "keep.txt" in the base',
      'extra: new here',
      'extra/tree: new here',
      'extra/tree/e.txt: new here',
    ]);
    // --force: what only the copy has goes aside (a directory with its tree, once), and back on undo.
    const before = await describeTree(live);
    const journal = new TargetJournal(join(root, 'run.jsonl'));
    const incoming = join(root, 'incoming');
    await mkdir(incoming);
    const delta: DeltaRecord = {
      removed: [],
      sent: [],
      chmod: [],
      mtimes: [],
      bytes: 0,
      counts: { added: 0, changed: 0, removed: 0, metadata: 0 },
    };
    const applied = await applyVolumeDelta({
      live,
      incoming,
      undoDir: join(root, 'undo'),
      delta,
      extras: ['extra', 'extra/tree', 'extra/tree/e.txt'],
      journal,
      asRoot: false,
    });
    assert.equal(applied.movedAside, 1);
    assert.ok(!(await describeTree(live)).some((line) => line.startsWith('extra')));
    assert.deepEqual((await undoAll(journal)).failed, []);
    assert.deepEqual(await describeTree(live), before);
  });
});

test('the check against the base sees a file rewritten here with the same size by its modification time (microseconds)', async () => {
  await withDirs(async (root) => {
    const live = join(root, 'live');
    await makeLive(live);
    // As the migration left it: the archive's time, to the microsecond (touch sets it exactly; utimes takes a double).
    execFileSync('touch', ['-m', '-d', '@1749283750.123456789', join(live, 'keep.txt')]);
    const micros = '1749283750123456';
    const base: BaseEntry[] = [['keep.txt', 'file', 4, null, micros]];
    const others = (differences: string[]): string[] => differences.filter((line) => line.startsWith('keep.txt'));
    assert.deepEqual(others(await compareWithBase(live, base)), [], 'the same file, the same time');
    // borg prints the ns through a float: its microseconds may be rounded up by one.
    assert.deepEqual(
      others(await compareWithBase(live, [['keep.txt', 'file', 4, null, '1749283750123457']])),
      [],
      'within 1 µs is the same time',
    );
    assert.equal(
      others(await compareWithBase(live, [['keep.txt', 'file', 4, null, '1749283750123458']])).length,
      1,
      '2 µs apart is another time',
    );
    await writeFile(join(live, 'keep.txt'), 'KEEP');
    assert.deepEqual(
      others(await compareWithBase(live, base)).map((line) => line.replace(/at \S+,/, 'at T,')),
      ['keep.txt: modified here at T, 2025-06-07T08:09:10.123456Z in the base'],
    );
    // A base from a deploy that sent no times: size only, as before.
    assert.deepEqual(others(await compareWithBase(live, [['keep.txt', 'file', 4, null]])), []);
  });
});

test('borg list times (local time, microseconds) become epoch microseconds', () => {
  const local = new Date(2026, 11, 2, 9, 23, 25);
  assert.equal(borgTimeToEpochMicros('2026-12-02T09:23:25.794123'), String(BigInt(local.getTime()) * 1000n + 794123n));
  assert.equal(borgTimeToEpochMicros('2026-12-02T09:23:25'), String(BigInt(local.getTime()) * 1000n));
  assert.equal(borgTimeToEpochMicros('2026-12-02T09:23:25.5'), String(BigInt(local.getTime()) * 1000n + 500000n));
  assert.equal(borgTimeToEpochMicros('Wed, 2026-12-02 09:23:25'), undefined);
});

test('a whole volume (target_writes: discard) replaces the copy in one rename each way', async () => {
  await withDirs(async (root) => {
    const live = join(root, 'live');
    const incoming = join(root, 'incoming');
    await makeLive(live);
    await mkdir(incoming);
    await writeFile(join(incoming, 'app.log'), 'the source log');
    const before = await describeTree(live);
    const journal = new TargetJournal(join(root, 'run.jsonl'));
    const delta: DeltaRecord = {
      removed: [],
      sent: [],
      chmod: [],
      mtimes: [],
      bytes: 0,
      counts: { added: 0, changed: 1, removed: 0, metadata: 0 },
      whole: true,
    };
    await applyVolumeDelta({ live, incoming, undoDir: join(root, 'undo'), delta, journal, asRoot: false });
    assert.deepEqual(await describeTree(live), ['app.log 644 the source log']);
    assert.deepEqual((await undoAll(journal)).failed, []);
    assert.deepEqual(await describeTree(live), before);
  });
});

test('a delta never writes through a symlink of the copy: a parent that is a link here is refused', async () => {
  await withDirs(async (root) => {
    const live = join(root, 'live');
    const outside = join(root, 'outside');
    const incoming = join(root, 'incoming');
    await mkdir(live);
    await mkdir(outside);
    await symlink(outside, join(live, 'dir'));
    await mkdir(join(incoming, 'dir'), { recursive: true });
    await writeFile(join(incoming, 'dir', 'file.txt'), 'must not land outside');
    const delta: DeltaRecord = {
      removed: [],
      sent: ['dir/file.txt'],
      chmod: [],
      mtimes: [],
      bytes: 21,
      counts: { added: 1, changed: 0, removed: 0, metadata: 0 },
    };
    await assert.rejects(
      applyVolumeDelta({
        live,
        incoming,
        undoDir: join(root, 'undo'),
        delta,
        journal: new TargetJournal(join(root, 'run.jsonl')),
        asRoot: false,
      }),
      (error: Error & { code?: string }) =>
        error.code === 'METADATA_PATH_UNSAFE' && /parent is not a directory/.test(error.message),
    );
    assert.deepEqual(await readdir(outside), []);
  });
});
