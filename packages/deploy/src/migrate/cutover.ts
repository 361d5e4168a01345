import type { SpecialFileSpec } from '@deploykit/core';
import { SPECIAL_FILE_KINDS, specialFilesError, splitDeclared, type SpecialFileEntry } from './archive-listing.js';
import type { FileDigest } from './checksums.js';
import { posix } from 'node:path';
import { readRunRecords } from './journal.js';
import type { BaseEntry, DeltaRecord } from './migration-header.js';
import { buildExactPatterns, type VolumeDelta, type VolumeEntry } from './volume-delta.js';

/** The finished migration (or cutover) a cutover builds on: its archive is what the target's copy holds. */
export interface BaseMigration {
  readonly runId: string;
  readonly archive: string;
  readonly finishedAt: string;
  /** True when that run was itself a cutover. */
  readonly cutover: boolean;
}

/**
 * The newest finished migration of `app` from this host to `target`, from the source run records
 * (`finished` line, written only after the target reported the app healthy), or undefined.
 */
export async function findBaseMigration(
  stateDir: string,
  app: string,
  target: string,
): Promise<BaseMigration | undefined> {
  let found: BaseMigration | undefined;
  for (const { runId, lines } of await readRunRecords(stateDir, app)) {
    const finished = lines.find(
      (line) =>
        line.step === 'finished' &&
        line.status === 'ok' &&
        line.detail?.target === target &&
        typeof line.detail?.archive === 'string',
    );
    if (finished)
      found = {
        runId,
        archive: String(finished.detail!.archive),
        finishedAt: finished.time,
        cutover: finished.detail?.cutover === true,
      };
  }
  return found;
}

/** The base entries the target checks its copy against. */
export function toBaseEntries(listing: readonly VolumeEntry[]): BaseEntry[] {
  return listing
    .filter((entry) => entry.path !== '.')
    .map((entry): BaseEntry => {
      const head = [
        entry.path,
        entry.type,
        entry.type === 'file' ? entry.size : 0,
        entry.type === 'symlink' ? (entry.target ?? '') : null,
      ] as const;
      const micros = entry.type === 'file' ? borgTimeToEpochMicros(entry.mtime) : undefined;
      return micros === undefined ? head : [...head, micros];
    });
}

/**
 * A time as `borg list` prints it (ISO without an offset, in this process's local time zone, which the
 * borg it ran shares; microseconds) as epoch microseconds; undefined for any other shape.
 */
export function borgTimeToEpochMicros(time: string): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(time);
  if (match === null) return undefined;
  const [, year, month, day, hour, minute, second, fraction] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  const seconds =
    new Date(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second)).getTime() /
    1000;
  if (!Number.isFinite(seconds)) return undefined;
  return String(BigInt(seconds) * 1_000_000n + BigInt((fraction ?? '').padEnd(6, '0')));
}

/** `ls`-style permission letters (borg's mode without the type letter, e.g. "rwsr-x--T") as st_mode & 0o7777. */
export function permsToMode(perms: string): number {
  if (!/^[r-][w-][xsS-][r-][w-][xsS-][r-][w-][xtT-]$/.test(perms))
    throw new Error(`not a permission string: ${JSON.stringify(perms)}`);
  let mode = 0;
  const bits = [0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1];
  for (let index = 0; index < 9; index += 1) {
    const char = perms[index]!;
    if (char !== '-' && char !== 'S' && char !== 'T') mode |= bits[index]!;
  }
  if (perms[2] === 's' || perms[2] === 'S') mode |= 0o4000;
  if (perms[5] === 's' || perms[5] === 'S') mode |= 0o2000;
  if (perms[8] === 't' || perms[8] === 'T') mode |= 0o1000;
  return mode;
}

/**
 * What the target needs to turn the base into the final volume, and the borg patterns selecting the
 * delta part's entries (added, changed, re-pointed symlinks). `mtimes` are every entry's mtime in
 * ns on the stopped source (scanMtimes all), `rootMtimeNs` the volume root's.
 */
export function buildDeltaRecord(
  volumePath: string,
  delta: VolumeDelta,
  mtimes: ReadonlyMap<string, string>,
  rootMtimeNs: string,
): { record: DeltaRecord; patterns: string } {
  const relinked = delta.metadata.filter((change) => change.changes.includes('target')).map((change) => change.path);
  const sent = [
    ...delta.added.map((entry) => entry.path),
    ...delta.changed.map((entry) => entry.path),
    ...relinked,
  ].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const chmod = delta.metadata
    .filter(
      (change) =>
        !change.changes.includes('target') &&
        (change.changes.includes('mode') || change.changes.includes('owner')) &&
        change.path !== '.',
    )
    .map((change): [string, VolumeDelta['added'][number]['type'], number, number, number] => [
      change.path,
      change.type,
      permsToMode(change.final.perms),
      change.final.uid,
      change.final.gid,
    ]);
  // Directories whose entries change get their final mtime back after the renames; entries whose mtime alone changed too.
  const touched = new Set<string>();
  for (const path of [...sent, ...delta.removed.map((entry) => entry.path)]) touched.add(posix.dirname(path));
  for (const change of delta.metadata)
    if (change.changes.includes('mtime') && !change.changes.includes('target')) touched.add(change.path);
  const ns = (path: string): string | undefined => (path === '.' ? rootMtimeNs : mtimes.get(path));
  const record: DeltaRecord = {
    removed: delta.removed.filter((entry) => entry.path !== '.').map((entry) => [entry.path, entry.type]),
    sent,
    chmod,
    mtimes: [...touched].sort().flatMap((path) => (ns(path) === undefined ? [] : [[path, ns(path)!] as const])),
    bytes: delta.bytes,
    counts: {
      added: delta.added.length,
      changed: delta.changed.length,
      removed: delta.removed.length,
      metadata: delta.metadata.length,
    },
  };
  return { record, patterns: buildExactPatterns(volumePath, sent) };
}

/**
 * The final archive's volume as a contents record needs it (files with SHA-256, symlinks, declared
 * special files), from the listing the delta was computed from: the cutover lists the final archive
 * once, not twice, inside its write-stop window. An undeclared device node or FIFO is refused as the
 * migration's own listing does.
 */
export function contentsFromListing(
  final: readonly VolumeEntry[],
  volumePath: string,
  declared: readonly SpecialFileSpec[] = [],
): { files: FileDigest[]; symlinks: [string, string][]; special: SpecialFileEntry[] } {
  // The final listing is sorted by path already (parseVolumeListing), so every list below is too.
  const letters: Record<string, string> = { fifo: 'p', char: 'c', block: 'b' };
  const specials = final
    .filter((entry) => entry.type === 'fifo' || entry.type === 'char' || entry.type === 'block')
    .map((entry): [string, string] => [letters[entry.type]!, entry.path]);
  const split = splitDeclared(specials, declared);
  if (split.undeclared.length > 0) throw specialFilesError(volumePath, 'the final archive', split.undeclared);
  return {
    files: final
      .filter((entry) => entry.type === 'file')
      .map((entry) => ({ path: entry.path, size: entry.size, sha256: entry.sha256 ?? '' })),
    symlinks: final
      .filter((entry) => entry.type === 'symlink')
      .map((entry): [string, string] => [entry.path, entry.target ?? '']),
    special: split.declared.map(([type, path]) => ({ path, type: SPECIAL_FILE_KINDS[type]! })),
  };
}
