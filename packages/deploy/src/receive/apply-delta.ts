import type { Stats } from 'node:fs';
import { chmod, lchown, lstat, lutimes, mkdir, readdir, readlink, rename } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { DependencyError } from '@deploykit/core';
import { lstatInside } from '../migrate/fidelity.js';
import type { BaseEntry, DeltaRecord } from '../migrate/migration-header.js';
import type { VolumeEntryType } from '../migrate/volume-delta.js';
import type { TargetJournal } from './target-journal.js';

/**
 * The target side of a cutover's volume delta (docs/decisions/0008): the copy a finished migration
 * left is checked against the base archive, then turned into the final archive's volume in place -
 * every entry taken away or replaced is renamed into an undo dir first (same filesystem: O(1), and
 * the undo is renaming it back), the delta part's entries are renamed in from staging, modes and
 * owners set; each action's undo is in the run record before the action.
 */

function entryTypeOf(
  stats: Pick<Stats, 'isFile' | 'isDirectory' | 'isSymbolicLink' | 'isFIFO' | 'isCharacterDevice' | 'isBlockDevice'>,
): VolumeEntryType | 'other' {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isCharacterDevice()) return 'char';
  if (stats.isBlockDevice()) return 'block';
  return 'other';
}

/** Every entry below `dir` (not following symlinks): [path, type, size, link target]. */
async function walk(dir: string): Promise<Map<string, BaseEntry | [string, 'other', number, null]>> {
  const found = new Map<string, BaseEntry | [string, 'other', number, null]>();
  const stack = [''];
  while (stack.length > 0) {
    const relative = stack.pop()!;
    for (const name of await readdir(relative === '' ? dir : join(dir, relative))) {
      const path = relative === '' ? name : `${relative}/${name}`;
      const stats = await lstat(join(dir, path), { bigint: true });
      const type = entryTypeOf(stats);
      const head = [
        path,
        type,
        type === 'file' ? Number(stats.size) : 0,
        type === 'symlink' ? await readlink(join(dir, path)) : null,
      ] as const;
      found.set(path, (type === 'file' ? [...head, String(stats.mtimeNs / 1000n)] : head) as BaseEntry);
      if (type === 'dir') stack.push(path);
    }
  }
  return found;
}

/**
 * Differences between a volume on disk and the base archive's entries (path, type, a file's size and
 * modification time to the microsecond, a link's target): the copy a cutover builds on must be what
 * the migration verified. Empty = same. Content is not hashed: a same-size rewrite is seen by its
 * mtime, unless whatever wrote it also set the old mtime back.
 */
export async function compareWithBase(dir: string, base: readonly BaseEntry[]): Promise<string[]> {
  const onDisk = await walk(dir);
  const differences: string[] = [];
  for (const [path, type, size, target, micros] of base) {
    if (path === '.') continue;
    const there = onDisk.get(path);
    onDisk.delete(path);
    if (there === undefined) differences.push(`${path}: gone`);
    else if (there[1] !== type) differences.push(`${path}: a ${there[1]} here, a ${type} in the base`);
    else if (type === 'file' && there[2] !== size)
      differences.push(`${path}: ${there[2]} bytes here, ${size} in the base`);
    else if (type === 'file' && micros !== undefined && !sameMicros(there[4], micros))
      differences.push(`${path}: modified here at ${isoOfMicros(there[4])}, ${isoOfMicros(micros)} in the base`);
    else if (type === 'symlink' && there[3] !== target)
      differences.push(`${path}: points to ${JSON.stringify(there[3])} here, ${JSON.stringify(target)} in the base`);
  }
  for (const path of [...onDisk.keys()].sort()) differences.push(`${path}: new here`);
  return differences;
}

/**
 * Two mtimes in epoch microseconds within 1 µs of each other: borg prints a nanosecond mtime through a
 * float, which rounds (…749152 here may be …749153 in its listing).
 */
function sameMicros(here: string | undefined, base: string): boolean {
  if (here === undefined) return false;
  const difference = BigInt(here) - BigInt(base);
  return difference >= -1n && difference <= 1n;
}

/** Epoch microseconds as an ISO time (UTC, microseconds), for messages. */
function isoOfMicros(micros: string | undefined): string {
  if (micros === undefined) return 'an unknown time';
  const value = BigInt(micros);
  return new Date(Number(value / 1000n))
    .toISOString()
    .replace(/\.\d{3}Z$/, `.${String(value % 1_000_000n).padStart(6, '0')}Z`);
}

/** What applying a delta did, for the report. */
export interface DeltaApplied {
  /** Entries taken away or replaced (renamed into the undo dir). */
  readonly movedAside: number;
  /** Entries of the delta part put in place. */
  readonly placed: number;
  readonly modes: number;
  readonly mtimes: number;
}

/** Checks that `relative`'s parent in `dir` is reached through real directories only; returns the full path. */
async function safePath(dir: string, relative: string): Promise<string> {
  const parent = posix.dirname(relative);
  if (parent !== '.') {
    const { stats } = await lstatInside(dir, parent);
    if (!stats.isDirectory())
      throw new DependencyError(
        'METADATA_PATH_UNSAFE',
        `the delta names ${JSON.stringify(relative)}, whose parent is not a directory here; nothing was changed outside ${dir}`,
      );
  }
  return join(dir, relative);
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  return lstat(path).catch(() => undefined);
}

/**
 * Applies one volume's delta to the live copy `live`: `incoming` holds the delta part's extracted
 * tar, `undoDir` (same filesystem, made here) receives what is taken away. Called with the app
 * stopped and the copy checked against the base. Every rename is journaled with its undo first.
 */
export async function applyVolumeDelta(options: {
  live: string;
  incoming: string;
  undoDir: string;
  delta: DeltaRecord;
  extras?: readonly string[];
  journal: TargetJournal;
  asRoot: boolean;
}): Promise<DeltaApplied> {
  const { live, incoming, undoDir, delta, journal } = options;
  await mkdir(undoDir, { recursive: true, mode: 0o700 });
  // Renames move their directories' mtimes: each directory the delta touches gets its time back on undo
  // (journaled first, so undone last, after the renames back).
  await journalDirectoryTimes(live, delta, options.extras ?? [], journal);
  if (delta.whole) {
    // The whole volume came (target_writes: discard): the copy here goes aside as one rename, the new one takes its place.
    const aside = join(undoDir, 'whole');
    journal.undo({ kind: 'rename-path', from: aside, to: live });
    await rename(live, aside);
    journal.undo({ kind: 'remove-path', path: live });
    await rename(incoming, live);
    return { movedAside: 1, placed: 1, modes: 0, mtimes: 0 };
  }
  let movedAside = 0;
  // Entries only the copy here has (--force): aside first, a directory with everything in it.
  const extraDirs: string[] = [];
  for (const path of [...(options.extras ?? [])].sort((a, b) => a.split('/').length - b.split('/').length)) {
    if (extraDirs.some((dir) => path.startsWith(`${dir}/`))) continue;
    const full = await safePath(live, path);
    const stats = await lstatOrUndefined(full);
    if (stats === undefined) continue;
    const aside = join(undoDir, String(movedAside));
    journal.undo({ kind: 'rename-path', from: aside, to: full });
    await rename(full, aside);
    movedAside += 1;
    if (stats.isDirectory()) extraDirs.push(path);
  }
  // 1. Out of the way, deepest first: what the final archive lacks, then what the delta replaces.
  const sent = new Set(delta.sent);
  const away = [
    ...delta.removed.map(([path]) => path),
    ...[...sent].sort((a, b) => b.split('/').length - a.split('/').length),
  ];
  for (const path of away) {
    const full = await safePath(live, path).catch((error: unknown) => {
      // A removed entry under a directory that is gone already went with it.
      if (error instanceof DependencyError && /does not exist here/.test(error.message)) return undefined;
      throw error;
    });
    if (full === undefined) continue;
    const stats = await lstatOrUndefined(full);
    if (stats === undefined) continue;
    // An added directory that exists as a directory (a copy changed with --force) keeps its other entries.
    if (
      sent.has(path) &&
      stats.isDirectory() &&
      (await lstatOrUndefined(join(incoming, path)))?.isDirectory() &&
      !delta.removed.some(([removed]) => removed === path)
    )
      continue;
    const aside = join(undoDir, String(movedAside));
    journal.undo({ kind: 'rename-path', from: aside, to: full });
    await rename(full, aside);
    movedAside += 1;
  }
  // 2. In from staging, parents first; a directory brings its entries along.
  let placed = 0;
  const moved: string[] = [];
  for (const path of delta.sent) {
    if (moved.some((dir) => path.startsWith(`${dir}/`))) continue;
    const from = join(incoming, path);
    const stats = await lstatOrUndefined(from);
    if (stats === undefined)
      throw new DependencyError(
        'DELTA_ENTRY_MISSING',
        `the delta part lacks ${JSON.stringify(path)}, which its contents record lists`,
        { hint: 'The archive changed between the listing and the export? Run the cutover again.' },
      );
    const to = await safePath(live, path);
    const there = await lstatOrUndefined(to);
    if (there !== undefined) {
      if (there.isDirectory() && stats.isDirectory()) {
        // Merging into a directory kept above: its entries come one by one.
        continue;
      }
      throw new DependencyError(
        'DELTA_PATH_TAKEN',
        `${JSON.stringify(path)} is still there in ${live} after the entries it replaces were moved aside`,
      );
    }
    journal.undo({ kind: 'remove-path', path: to });
    await rename(from, to);
    placed += 1;
    if (stats.isDirectory()) moved.push(path);
  }
  // 3. Modes and owners of entries whose content stayed (lchown: a link itself, never its target).
  let modes = 0;
  for (const [path, type, mode, uid, gid] of delta.chmod) {
    const full = await safePath(live, path);
    const stats = await lstatOrUndefined(full);
    if (stats === undefined || entryTypeOf(stats) !== type)
      throw new DependencyError(
        'DELTA_ENTRY_MISSING',
        `${JSON.stringify(path)} should be a ${type} in ${live} for its new mode or owner`,
      );
    journal.undo({
      kind: 'set-mode',
      path: full,
      mode: stats.mode & 0o7777,
      uid: stats.uid,
      gid: stats.gid,
      symlink: type === 'symlink',
    });
    await setMode(full, { mode, uid, gid, symlink: type === 'symlink' }, options.asRoot);
    modes += 1;
  }
  // 4. Modification times last (renames above moved the directories' ones); the ns come with the fidelity step.
  let mtimes = 0;
  for (const [path, ns] of [...delta.mtimes].sort((a, b) => b[0].split('/').length - a[0].split('/').length)) {
    const full = path === '.' ? live : await safePath(live, path);
    const stats = await lstatOrUndefined(full);
    if (stats === undefined) continue;
    const seconds = Number(BigInt(ns) / 1_000_000_000n) + Number(BigInt(ns) % 1_000_000_000n) / 1e9;
    await lutimes(full, stats.atime, seconds);
    mtimes += 1;
  }
  return { movedAside, placed, modes, mtimes };
}

/**
 * Journals a `set-mtime` undo for every existing directory of the copy a delta's renames or mtimes
 * change: the parents of what goes aside or comes in, the directories whose times it sets, and (a whole
 * volume) the volume's own parent.
 */
async function journalDirectoryTimes(
  live: string,
  delta: DeltaRecord,
  extras: readonly string[],
  journal: TargetJournal,
): Promise<void> {
  const dirs = new Set<string>();
  const parentOf = (path: string): string => (path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '.');
  if (delta.whole) {
    dirs.add(dirname(live));
  } else {
    for (const path of [...extras, ...delta.removed.map(([removed]) => removed), ...delta.sent])
      dirs.add(parentOf(path));
    for (const [path] of delta.mtimes) dirs.add(path);
  }
  for (const dir of [...dirs].sort()) {
    const full = dir.startsWith('/') ? dir : dir === '.' ? live : await safePath(live, dir).catch(() => undefined);
    if (full === undefined) continue;
    const stats = await lstat(full, { bigint: true }).catch(() => undefined);
    if (stats === undefined || !stats.isDirectory()) continue;
    journal.undo({ kind: 'set-mtime', path: full, ns: String(stats.mtimeNs) });
  }
}

/** Sets an entry's mode and owner without following it (a symlink: only its owner; chown only as root or when unchanged). */
export async function setMode(
  path: string,
  wanted: { mode: number; uid: number; gid: number; symlink: boolean },
  asRoot: boolean,
): Promise<void> {
  const stats = await lstat(path);
  if (asRoot && (stats.uid !== wanted.uid || stats.gid !== wanted.gid)) await lchown(path, wanted.uid, wanted.gid);
  if (!wanted.symlink && (stats.mode & 0o7777) !== wanted.mode) await chmod(path, wanted.mode);
}
