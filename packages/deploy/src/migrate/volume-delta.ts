import type { Host } from '@deploykit/core';
import { DependencyError } from '@deploykit/core';
import { borgLockError, describeBorgFailure } from './borg-list.js';

/**
 * The delta of one volume between two archives of the same repository: the base (the archive of
 * the newest finished migration to the target, what the target's live copy holds) and the final
 * one (made after writes stopped). What a cutover sends instead of the whole volume; see
 * docs/decisions/0008-cutover-delta.md for why two `borg list` listings and not `borg diff`.
 */

/** An entry's type, from the letter `borg list` prints. */
export type VolumeEntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block';

const ENTRY_TYPES: Readonly<Record<string, VolumeEntryType>> = {
  '-': 'file',
  d: 'dir',
  l: 'symlink',
  p: 'fifo',
  c: 'char',
  b: 'block',
};

/** One entry of a volume as an archive holds it. */
export interface VolumeEntry {
  /** Relative to the volume; "." is the volume's root. */
  readonly path: string;
  readonly type: VolumeEntryType;
  /** The permission bits as `ls` prints them, without the type letter (e.g. "rw-r-----", "rwsr-xr-x"). */
  readonly perms: string;
  readonly uid: number;
  readonly gid: number;
  readonly user: string;
  readonly group: string;
  /** As borg prints it: ISO local time with microseconds. */
  readonly mtime: string;
  readonly ctime: string;
  /** BSD flags (chattr): 0 almost always. */
  readonly flags: number;
  /** Regular files: content bytes (a hard link's: its leader's). */
  readonly size: number;
  /** Regular files, when the listing asked for it: SHA-256 of the content (a hard link's: its leader's). */
  readonly sha256?: string;
  /** Symlinks: the target string, verbatim. */
  readonly target?: string;
  /** A hard-link follower (borg 1.2 keeps the content with the first name only): its leader, relative to the volume. */
  readonly hardlinkOf?: string;
}

/** An attribute a metadata-only change can touch. */
export type MetadataChangeKind = 'mode' | 'owner' | 'mtime' | 'target' | 'flags' | 'ctime';

/** Same path, same type, same content; other attributes differ. */
export interface MetadataChange {
  readonly path: string;
  readonly type: VolumeEntryType;
  /**
   * What differs, in this order: mode, owner (uid, gid, user or group), mtime, target (a re-pointed
   * symlink), flags; `ctime` alone when nothing borg lists differs but the inode changed: extended
   * attributes, ACLs or the link count, which neither `borg list` nor `borg diff` 1.2 shows.
   */
  readonly changes: readonly MetadataChangeKind[];
  /** The entry as the final archive holds it (what the target sets). */
  readonly final: VolumeEntry;
}

/** What changed in one volume between two archives. */
export interface VolumeDelta {
  /** Entries only the final archive has (a path whose type changed is removed and added). */
  readonly added: readonly VolumeEntry[];
  /** Regular files in both whose content (size or SHA-256) differs; as the final archive holds them. */
  readonly changed: readonly VolumeEntry[];
  /** Entries only the base archive has, as it holds them (deepest first: the order to delete them in). */
  readonly removed: readonly VolumeEntry[];
  /** Same type and content, other attributes differ. */
  readonly metadata: readonly MetadataChange[];
  /** Content bytes to send: the regular files among `added` and `changed`. */
  readonly bytes: number;
}

const byPath = <T extends { path: string }>(a: T, b: T): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** Sorts deepest first, then by path: children before their directory, the order to delete in. */
function deepestFirst(a: VolumeEntry, b: VolumeEntry): number {
  const depth = (path: string): number => (path === '.' ? 0 : path.split('/').length);
  return depth(b.path) - depth(a.path) || byPath(a, b);
}

/**
 * The delta between two listings of one volume (pure: no borg). Regular files compare by size and
 * SHA-256 when both sides have one; a file without a hash on either side compares by size, mtime
 * and ctime (the rule borg's own files cache uses to reuse a file's chunks), which is how
 * `computeVolumeDelta` avoids hashing what did not change.
 */
export function planVolumeDelta(base: readonly VolumeEntry[], final: readonly VolumeEntry[]): VolumeDelta {
  const before = new Map(base.map((entry) => [entry.path, entry]));
  const added: VolumeEntry[] = [];
  const changed: VolumeEntry[] = [];
  const removed: VolumeEntry[] = [];
  const metadata: MetadataChange[] = [];
  const seen = new Set<string>();
  for (const entry of final) {
    seen.add(entry.path);
    const old = before.get(entry.path);
    if (old === undefined || old.type !== entry.type) {
      if (old !== undefined) removed.push(old);
      added.push(entry);
      continue;
    }
    if (entry.type === 'file' && !sameContent(old, entry)) {
      changed.push(entry);
      continue;
    }
    const changes = metadataChanges(old, entry);
    if (changes.length > 0) metadata.push({ path: entry.path, type: entry.type, changes, final: entry });
  }
  for (const entry of base) if (!seen.has(entry.path)) removed.push(entry);
  const bytes = [...added, ...changed].reduce((sum, entry) => sum + (entry.type === 'file' ? entry.size : 0), 0);
  return {
    added: added.sort(byPath),
    changed: changed.sort(byPath),
    removed: removed.sort(deepestFirst),
    metadata: metadata.sort(byPath),
    bytes,
  };
}

function sameContent(a: VolumeEntry, b: VolumeEntry): boolean {
  if (a.size !== b.size) return false;
  if (a.sha256 && b.sha256) return a.sha256 === b.sha256;
  return a.mtime === b.mtime && a.ctime === b.ctime;
}

function metadataChanges(a: VolumeEntry, b: VolumeEntry): MetadataChangeKind[] {
  const changes: MetadataChangeKind[] = [];
  if (a.perms !== b.perms) changes.push('mode');
  if (a.uid !== b.uid || a.gid !== b.gid || a.user !== b.user || a.group !== b.group) changes.push('owner');
  if (a.mtime !== b.mtime) changes.push('mtime');
  if (a.type === 'symlink' && a.target !== b.target) changes.push('target');
  if (a.flags !== b.flags) changes.push('flags');
  if (changes.length === 0 && a.ctime !== b.ctime) changes.push('ctime');
  return changes;
}

/** One item of `borg list --json-lines` with the keys LISTING_FORMAT asks for. */
interface BorgEntry {
  readonly type: string;
  readonly mode: string;
  readonly path: string;
  readonly uid: number;
  readonly gid: number;
  readonly user: string;
  readonly group: string;
  readonly source: string;
  readonly linktarget?: string;
  readonly flags?: number;
  readonly size?: number;
  readonly mtime: string;
  readonly ctime: string;
  readonly sha256?: string;
}

/** The keys a delta listing asks for (json-lines adds them to the ones always present). */
export const LISTING_FORMAT = '{mode}{uid}{gid}{user}{group}{size}{mtime}{ctime}{linktarget}{flags}';

/**
 * Parses a `borg list --json-lines --format LISTING_FORMAT[{sha256}]` output into the entries
 * under `volumePath` (the root as "."), sorted by path. A hard-link follower (mode "h...", no
 * content of its own in borg 1.2) takes its leader's size and hash. Sockets never occur (borg
 * does not archive them); an unknown type letter is an error, not a silent skip.
 */
export function parseVolumeListing(output: string, volumePath: string): VolumeEntry[] {
  const root = volumePath.replace(/\/+$/, '');
  const items = output
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as BorgEntry);
  const leaders = new Map(items.map((item) => [item.path, item]));
  const entries: VolumeEntry[] = [];
  for (const item of items) {
    if (item.path !== root && !item.path.startsWith(`${root}/`)) continue;
    const type = ENTRY_TYPES[item.type];
    if (type === undefined)
      throw new DependencyError(
        'BORG_LIST_UNKNOWN_TYPE',
        `borg list printed an entry of unknown type ${JSON.stringify(item.type)}: ${item.path}`,
      );
    const follower = type === 'file' && item.mode.startsWith('h');
    const leader = follower ? leaders.get(item.source) : item;
    const entry: VolumeEntry = {
      path: item.path === root ? '.' : item.path.slice(root.length + 1),
      type,
      perms: item.mode.slice(1),
      uid: item.uid,
      gid: item.gid,
      user: item.user,
      group: item.group,
      mtime: item.mtime,
      ctime: item.ctime,
      flags: item.flags ?? 0,
      size: type === 'file' ? (leader?.size ?? 0) : 0,
      ...(type === 'file' && leader?.sha256 ? { sha256: leader.sha256 } : {}),
      ...(type === 'symlink' ? { target: item.linktarget ?? item.source } : {}),
      ...(follower && item.source.startsWith(`${root}/`) ? { hardlinkOf: item.source.slice(root.length + 1) } : {}),
    };
    entries.push(entry);
  }
  return entries.sort(byPath);
}

/** A path as a borg pattern line matching exactly it (and nothing below it). */
export function exactPatternLine(archivePath: string): string {
  // borg strips a pattern line's surrounding whitespace and reads it line by line, so a path with
  // whitespace at either end or a control character goes as an anchored regex with \xNN escapes
  // (measured with borg 1.2.4: `+ pf:a/trail ` silently matches nothing and exits 0).
  if (/^\s|\s$|[\x00-\x1f\x7f]/.test(archivePath)) {
    const escaped = [...archivePath]
      .map((char) =>
        /[A-Za-z0-9/_-]/.test(char)
          ? char
          : char.codePointAt(0)! < 0x100
            ? `\\x${char.codePointAt(0)!.toString(16).padStart(2, '0')}`
            : `\\U${char.codePointAt(0)!.toString(16).padStart(8, '0')}`,
      )
      .join('');
    return `+ re:^${escaped}$`;
  }
  return `+ pf:${archivePath}`;
}

/**
 * A `--patterns-from` file selecting exactly the given volume-relative paths of `volumePath` and
 * nothing else (the final `- *` excludes the rest; without it borg includes everything). Fed to
 * `borg export-tar ::final -` (withPatternsOnStdin) it produces the tar of just those entries
 * (no parent directory of its own; a directory's contents only when listed).
 */
export function buildExactPatterns(volumePath: string, paths: readonly string[]): string {
  const root = volumePath.replace(/\/+$/, '');
  const lines = paths.map((path) => exactPatternLine(path === '.' ? root : `${root}/${path}`));
  return `${lines.join('\n')}\n- *\n`;
}

/**
 * Runs a borg argv with `--patterns-from` reading the command's stdin. Not `/dev/stdin`: when stdin
 * is a socket (node's pipes, an ssh channel) opening it fails with ENXIO (measured), so bash hands
 * borg a pipe from `cat` instead; thousands of paths do not fit an argv anyway.
 */
export function withPatternsOnStdin(argv: readonly string[]): string[] {
  return ['bash', '-c', 'exec "$@" --patterns-from <(cat)', 'borg-patterns', ...argv];
}

/** The argv listing a volume of an archive for a delta; with `patterns` (on stdin), only the paths they select. */
export function buildDeltaListingArgv(
  archive: string,
  volumePath: string,
  options: { sha256: boolean; patterns?: boolean },
): string[] {
  const format = options.sha256 ? `${LISTING_FORMAT}{sha256}` : LISTING_FORMAT;
  return options.patterns
    ? withPatternsOnStdin(['borg', 'list', '--json-lines', '--format', format, `::${archive}`])
    : ['borg', 'list', '--json-lines', '--format', format, `::${archive}`, volumePath];
}

/** Lists one volume of an archive (BORG_REPO in env): every entry, or with `only` just those paths. */
export async function listVolumeEntries(
  host: Host,
  env: Record<string, string>,
  archive: string,
  volumePath: string,
  options: { sha256: boolean; only?: readonly string[] },
): Promise<VolumeEntry[]> {
  if (options.only !== undefined && options.only.length === 0) return [];
  const patterns = options.only !== undefined;
  const result = await host.run({
    argv: buildDeltaListingArgv(archive, volumePath, { sha256: options.sha256, patterns }),
    env,
    maxBuffer: 512 * 1024 * 1024,
    ...(patterns ? { input: buildExactPatterns(volumePath, options.only!) } : {}),
  });
  const locked = borgLockError(result, env.BORG_REPO ?? '(BORG_REPO)', `the cutover delta of ${volumePath}`);
  if (locked) throw locked;
  if (result.exitCode !== 0)
    throw new DependencyError(
      'BORG_LIST_FAILED',
      `borg list ::${archive} ${volumePath} failed: ${describeBorgFailure(result)}`,
    );
  return parseVolumeListing(result.stdout, volumePath);
}

/** How the final archive's files get their SHA-256: all in one listing, or only the candidates in a second one. */
export type DeltaHashing = 'all' | 'candidates';

/**
 * Below this many content bytes per entry of the base, hashing everything in one listing is faster
 * than a second listing of the candidates: measured with borg 1.2.4, a listing pass costs ~150 us
 * per entry and hashing ~7.5 ns per byte (135 MB/s on the loaded 2-core test machine), so a
 * second pass pays off once the bytes it does not hash exceed ~20 KB per entry (decision 0008).
 */
export const HASH_CANDIDATES_MIN_BYTES_PER_ENTRY = 32 * 1024;

/** 'candidates' for a volume of large files, 'all' for one of many small ones (by the base listing). */
export function chooseDeltaHashing(base: readonly VolumeEntry[]): DeltaHashing {
  const bytes = base.reduce(
    (sum, entry) => sum + (entry.type === 'file' && entry.hardlinkOf === undefined ? entry.size : 0),
    0,
  );
  return base.length > 0 && bytes / base.length >= HASH_CANDIDATES_MIN_BYTES_PER_ENTRY ? 'candidates' : 'all';
}

/** How `computeVolumeDelta` went: what it listed and hashed, for the report and the decision record. */
export interface VolumeDeltaStats {
  readonly baseEntries: number;
  readonly finalEntries: number;
  readonly hashing: DeltaHashing;
  /** Regular files of the final archive whose content was hashed. */
  readonly hashed: number;
}

/**
 * The delta of `volumePath` between two archives with real borg. The base listing (with SHA-256)
 * can be passed in: the base archive never changes, so it can be listed before writes stop. The
 * final archive is then listed either with every file's SHA-256 (`hashing: 'all'`), or without
 * hashes and then, in a second `borg list` selecting exactly them, only the regular files that are
 * new or whose size, mtime or ctime moved (`'candidates'`: the others take the base's hash, the
 * rule borg's own files cache relies on), so the time in the write-stop window grows with the
 * changed bytes instead of the volume's. Default: chooseDeltaHashing of the base.
 */
export async function computeVolumeDelta(
  host: Host,
  env: Record<string, string>,
  options: {
    base: string;
    final: string;
    volumePath: string;
    baseListing?: readonly VolumeEntry[];
    hashing?: DeltaHashing;
  },
): Promise<{ delta: VolumeDelta; finalListing: VolumeEntry[]; stats: VolumeDeltaStats }> {
  const { volumePath } = options;
  const base = options.baseListing ?? (await listVolumeEntries(host, env, options.base, volumePath, { sha256: true }));
  const hashing = options.hashing ?? chooseDeltaHashing(base);
  let final = await listVolumeEntries(host, env, options.final, volumePath, { sha256: hashing === 'all' });
  let hashed = final.filter((entry) => entry.type === 'file').length;
  if (hashing === 'candidates') {
    const before = new Map(base.map((entry) => [entry.path, entry]));
    const unchanged = (entry: VolumeEntry, old: VolumeEntry | undefined): boolean =>
      old !== undefined &&
      old.type === 'file' &&
      old.size === entry.size &&
      old.mtime === entry.mtime &&
      old.ctime === entry.ctime;
    const candidates = final.filter((entry) => entry.type === 'file' && !unchanged(entry, before.get(entry.path)));
    // A hard-link follower's hash is its leader's, so the leaders of the candidates are listed too.
    const only = [
      ...new Set(
        candidates.flatMap((entry) => (entry.hardlinkOf === undefined ? [entry.path] : [entry.path, entry.hardlinkOf])),
      ),
    ];
    const hashes = new Map(
      (await listVolumeEntries(host, env, options.final, volumePath, { sha256: true, only })).map((entry) => [
        entry.path,
        entry.sha256,
      ]),
    );
    hashed = candidates.length;
    final = final.map((entry) => {
      if (entry.type !== 'file') return entry;
      const sha256 =
        hashes.get(entry.path) ??
        (unchanged(entry, before.get(entry.path)) ? before.get(entry.path)!.sha256 : undefined);
      return sha256 ? { ...entry, sha256 } : entry;
    });
  }
  return {
    delta: planVolumeDelta(base, final),
    finalListing: final,
    stats: { baseEntries: base.length, finalEntries: final.length, hashing, hashed },
  };
}
