import type { Host } from '@deploykit/core';
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
  const items = output.split('\n').filter(Boolean).map((line) => JSON.parse(line) as BorgItem);
  const byPath = new Map(items.map((item) => [item.path, item]));
  const strip = prefix.replace(/\/$/, '') + '/';
  const files: FileDigest[] = [];
  for (const item of items) {
    if (item.type !== '-' || !item.path.startsWith(strip)) continue;
    const leader = item.mode.startsWith('h') ? byPath.get(item.source) : item;
    files.push({ path: item.path.slice(strip.length), size: leader?.size ?? item.size ?? 0, sha256: leader?.sha256 ?? '' });
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** [path relative to `prefix`, link target] of the symlinks in a listing, sorted by path. */
export function parseArchiveSymlinks(output: string, prefix: string): [string, string][] {
  const strip = prefix.replace(/\/$/, '') + '/';
  return output
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as BorgItem)
    .filter((item) => item.type === 'l' && item.path.startsWith(strip))
    .map((item): [string, string] => [item.path.slice(strip.length), item.source])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Entry types (borg list `type`, find `%y`) a volume never carries: the target's tar guard refuses them. */
export const SPECIAL_FILE_TYPES: Readonly<Record<string, string>> = { c: 'character device', b: 'block device', p: 'FIFO' };

/** [type, path relative to `prefix`] of the device nodes and FIFOs in a listing. */
export function parseSpecialEntries(output: string, prefix: string): [string, string][] {
  const strip = prefix.replace(/\/$/, '') + '/';
  return output
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as BorgItem)
    .filter((item) => SPECIAL_FILE_TYPES[item.type] !== undefined && item.path.startsWith(strip))
    .map((item) => [item.type, item.path.slice(strip.length)]);
}

/** The error naming a volume's device nodes and FIFOs (at most 10), raised before any byte moves. */
export function specialFilesError(volume: string, where: string, entries: readonly (readonly [string, string])[]): ConfigError {
  const named = entries.slice(0, 10).map(([type, path]) => `${JSON.stringify(path)} (${SPECIAL_FILE_TYPES[type] ?? type})`);
  const more = entries.length > 10 ? ` and ${entries.length - 10} more` : '';
  return new ConfigError('VOLUME_SPECIAL_FILES', `volume ${volume} holds device nodes or FIFOs, which a migration does not carry (${where}): ${named.join(', ')}${more}`, {
    hint: 'An app cannot declare device nodes or FIFOs; the target refuses them. Remove them from the volume (let bin/start create what the app needs at run time), make a new backup, then migrate again.',
    details: { volume, entries: entries.map(([type, path]) => ({ type, path })) },
  });
}

/** Lists the regular files of one volume as stored in an archive; refuses device nodes and FIFOs. */
export async function listArchivedVolume(host: Host, env: Record<string, string>, archive: string, volumePath: string): Promise<FileDigest[]> {
  return (await listArchivedVolumeEntries(host, env, archive, volumePath)).files;
}

/** Lists the regular files and the symlinks of one volume as stored in an archive; refuses device nodes and FIFOs. */
export async function listArchivedVolumeEntries(host: Host, env: Record<string, string>, archive: string, volumePath: string): Promise<{ files: FileDigest[]; symlinks: [string, string][] }> {
  const result = await host.run({ argv: buildArchiveListingArgv(archive, volumePath), env, maxBuffer: 512 * 1024 * 1024 });
  if (result.exitCode !== 0 && result.exitCode !== 1) {
    throw new DependencyError('BORG_LIST_FAILED', `borg list ::${archive} ${volumePath} failed: ${result.stderr.trim()}`);
  }
  const special = parseSpecialEntries(result.stdout, volumePath);
  if (special.length > 0) throw specialFilesError(volumePath, `archive ${archive}`, special);
  return { files: parseArchiveListing(result.stdout, volumePath), symlinks: parseArchiveSymlinks(result.stdout, volumePath) };
}
