import type { Host } from '@deploykit/core';
import { DependencyError } from '@deploykit/core';
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

/** Lists the regular files of one volume as stored in an archive. */
export async function listArchivedVolume(host: Host, env: Record<string, string>, archive: string, volumePath: string): Promise<FileDigest[]> {
  const result = await host.run({ argv: buildArchiveListingArgv(archive, volumePath), env, maxBuffer: 512 * 1024 * 1024 });
  if (result.exitCode !== 0 && result.exitCode !== 1) {
    throw new DependencyError('BORG_LIST_FAILED', `borg list ::${archive} ${volumePath} failed: ${result.stderr.trim()}`);
  }
  return parseArchiveListing(result.stdout, volumePath);
}
