import type { Host, SpecialFileSpec, SpecialFileType } from '@deploykit/core';
import { ConfigError, DependencyError } from '@deploykit/core';
import type { FileDigest } from './checksums.js';

/** One item of `borg list --json-lines` with the keys we ask for. */
interface BorgItem {
  readonly type: string;
  readonly mode: string;
  readonly path: string;
  readonly source: string;
  readonly size?: number;
  readonly sha256?: string;
}

/** argv listing an archive's items under a path with size and SHA-256 (json-lines adds --format's keys). */
export function buildArchiveListingArgv(archive: string, path: string): string[] {
  return ['borg', 'list', '--json-lines', '--format', '{size}{sha256}', `::${archive}`, path];
}

/**
 * Parses a listing into the regular files under `prefix` (paths made relative to it). Hard-link
 * followers (mode starting with "h") carry no checksum in borg 1.2: they take their leader's.
 */
export function parseArchiveListing(output: string, prefix: string): FileDigest[] {
  const items = output
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as BorgItem);
  const byPath = new Map(items.map((item) => [item.path, item]));
  const strip = `${prefix.replace(/\/$/, '')}/`;
  const files: FileDigest[] = [];
  for (const item of items) {
    if (item.type !== '-' || !item.path.startsWith(strip)) continue;
    const leader = item.mode.startsWith('h') ? byPath.get(item.source) : item;
    files.push({
      path: item.path.slice(strip.length),
      size: leader?.size ?? item.size ?? 0,
      sha256: leader?.sha256 ?? '',
    });
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** [path relative to `prefix`, link target] of the symlinks in a listing, sorted by path. */
export function parseArchiveSymlinks(output: string, prefix: string): [string, string][] {
  return itemsUnder(output, prefix)
    .filter(({ item }) => item.type === 'l')
    .map(({ item, path }): [string, string] => [path, item.source])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The items of a json-lines listing below `prefix`, each with its path relative to it. */
function itemsUnder(output: string, prefix: string): { item: BorgItem; path: string }[] {
  const strip = `${prefix.replace(/\/$/, '')}/`;
  return output
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as BorgItem)
    .filter((item) => item.path.startsWith(strip))
    .map((item) => ({ item, path: item.path.slice(strip.length) }));
}

/** Entry types (borg list `type`, find `%y`) a volume carries only when the app declares them (volumes[].special_files). */
export const SPECIAL_FILE_TYPES: Readonly<Record<string, string>> = {
  c: 'character device',
  b: 'block device',
  p: 'FIFO',
};

/** The app.yaml type of a borg / find entry type letter. */
export const SPECIAL_FILE_KINDS: Readonly<Record<string, SpecialFileType>> = { c: 'char', b: 'block', p: 'fifo' };

/** A declared special file as the archive holds it; major/minor (devices) come from the source's disk. */
export interface SpecialFileEntry {
  readonly path: string;
  readonly type: SpecialFileType;
  readonly major?: number;
  readonly minor?: number;
}

/** Splits [type letter, path] entries into the declared ones (exact path and type) and the rest. */
export function splitDeclared(
  entries: readonly (readonly [string, string])[],
  declared: readonly SpecialFileSpec[] = [],
): { declared: [string, string][]; undeclared: [string, string][] } {
  const wanted = new Set(declared.map((file) => `${file.type}\0${file.path}`));
  const out = { declared: [] as [string, string][], undeclared: [] as [string, string][] };
  for (const [type, path] of entries)
    (wanted.has(`${SPECIAL_FILE_KINDS[type]}\0${path}`) ? out.declared : out.undeclared).push([type, path]);
  return out;
}

/** [type, path relative to `prefix`] of the device nodes and FIFOs in a listing. */
export function parseSpecialEntries(output: string, prefix: string): [string, string][] {
  return itemsUnder(output, prefix)
    .filter(({ item }) => SPECIAL_FILE_TYPES[item.type] !== undefined)
    .map(({ item, path }) => [item.type, path]);
}

/** The error naming a volume's device nodes and FIFOs (at most 10), raised before any byte moves. */
export function specialFilesError(
  volume: string,
  where: string,
  entries: readonly (readonly [string, string])[],
): ConfigError {
  const named = entries
    .slice(0, 10)
    .map(([type, path]) => `${JSON.stringify(path)} (${SPECIAL_FILE_TYPES[type] ?? type})`);
  const more = entries.length > 10 ? ` and ${entries.length - 10} more` : '';
  const declaration = entries
    .slice(0, 3)
    .map(([type, path]) => `{ path: ${JSON.stringify(path)}, type: ${SPECIAL_FILE_KINDS[type] ?? type} }`)
    .join(', ');
  return new ConfigError(
    'VOLUME_SPECIAL_FILES',
    `volume ${volume} holds device nodes or FIFOs it does not declare, which a migration does not carry (${where}): ${named.join(', ')}${more}`,
    {
      hint: `Remove them from the volume (let bin/start create what the app needs at run time) and make a new backup, or declare each in app.yaml under the volume - special_files: [${declaration}] - knowing that a device node gives whoever owns it access to that device (docs/app-folder.md); then migrate again.`,
      details: { volume, entries: entries.map(([type, path]) => ({ type, path })) },
    },
  );
}

/** Lists the regular files of one volume as stored in an archive; refuses device nodes and FIFOs it does not declare. */
export async function listArchivedVolume(
  host: Host,
  env: Record<string, string>,
  archive: string,
  volumePath: string,
  declared: readonly SpecialFileSpec[] = [],
): Promise<FileDigest[]> {
  return (await listArchivedVolumeEntries(host, env, archive, volumePath, declared)).files;
}

/**
 * Lists the regular files, the symlinks and the declared special files (path, type) of one volume
 * as stored in an archive; refuses device nodes and FIFOs that `declared` does not name exactly.
 */
export async function listArchivedVolumeEntries(
  host: Host,
  env: Record<string, string>,
  archive: string,
  volumePath: string,
  declared: readonly SpecialFileSpec[] = [],
): Promise<{ files: FileDigest[]; symlinks: [string, string][]; special: SpecialFileEntry[] }> {
  const result = await host.run({
    argv: buildArchiveListingArgv(archive, volumePath),
    env,
    maxBuffer: 512 * 1024 * 1024,
  });
  if (result.exitCode !== 0 && result.exitCode !== 1) {
    throw new DependencyError(
      'BORG_LIST_FAILED',
      `borg list ::${archive} ${volumePath} failed: ${result.stderr.trim()}`,
    );
  }
  const special = splitDeclared(parseSpecialEntries(result.stdout, volumePath), declared);
  if (special.undeclared.length > 0) throw specialFilesError(volumePath, `archive ${archive}`, special.undeclared);
  return {
    files: parseArchiveListing(result.stdout, volumePath),
    symlinks: parseArchiveSymlinks(result.stdout, volumePath),
    special: special.declared
      .map(([type, path]) => ({ path, type: SPECIAL_FILE_KINDS[type]! }))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  };
}
