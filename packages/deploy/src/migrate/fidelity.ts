import type { Stats } from 'node:fs';
import { lstat, lutimes } from 'node:fs/promises';
import type { Host } from '@deploykit/core';
import { DependencyError } from '@deploykit/core';

/**
 * What `borg export-tar | tar -x` loses (measured on borg 1.2.4: DESIGN §6), found on a volume and
 * carried by a side channel: xattrs and ACLs (getfattr dump, ACLs are system.posix_acl_* xattrs),
 * modification times after 2038-01-19 (clamped by export-tar), and sparse files (written out in
 * full). Paths are relative to the volume root.
 */
export interface FidelityMetadata {
  /** `getfattr -R -d -m - -h` text dump (setfattr --restore format); empty when no file has xattrs. */
  readonly xattrDump: string;
  /** Files carrying at least one xattr other than ACLs. */
  readonly xattrFiles: number;
  /** Files carrying a POSIX ACL. */
  readonly aclFiles: number;
  /** [path, mtime in seconds] for files modified after 2038-01-19T03:14:07Z. */
  readonly lateMtimes: readonly (readonly [string, string])[];
  /** Regular files that are sparse (allocated less than their size). */
  readonly sparseFiles: readonly string[];
}

/** Seconds since the epoch of 2038-01-19T03:14:07Z, the last second a signed 32-bit time holds. */
export const Y2038_SECONDS = 2147483647;

/** argv dumping every xattr (ACLs included) under `.` without following symlinks. */
export const GETFATTR_ARGV = ['getfattr', '-R', '-d', '-m', '-', '-h', '-e', 'base64', '.'] as const;
/** argv listing files (NUL-separated) modified after 2038 with their mtime. */
export const LATE_MTIME_ARGV = ['find', '.', '-newermt', `@${Y2038_SECONDS}`, '-printf', '%P\\t%T@\\0'] as const;
/** argv listing regular non-empty files with their sparseness (allocated/size). */
export const SPARSE_ARGV = ['find', '.', '-type', 'f', '-size', '+0', '-printf', '%S\\t%P\\0'] as const;

/** Parses a getfattr dump: counts files with plain xattrs and with ACLs. */
export function countXattrFiles(dump: string): { xattrFiles: number; aclFiles: number } {
  let xattrFiles = 0;
  let aclFiles = 0;
  for (const block of dump.split(/\n(?=# file: )/)) {
    const names = block.split('\n').filter((line) => /^[a-z]+\.[^=]+=/.test(line)).map((line) => line.slice(0, line.indexOf('=')));
    if (names.some((name) => name.startsWith('system.posix_acl_'))) aclFiles += 1;
    if (names.some((name) => !name.startsWith('system.posix_acl_'))) xattrFiles += 1;
  }
  return { xattrFiles, aclFiles };
}

/** Parses `find -printf '%P\t%T@\0'` output into [path, seconds] pairs. */
export function parseLateMtimes(output: string): [string, string][] {
  return output
    .split('\0')
    .filter((record) => record.includes('\t'))
    .map((record) => {
      const tab = record.lastIndexOf('\t');
      return [record.slice(0, tab), record.slice(tab + 1)] as [string, string];
    });
}

/** Parses `find -printf '%S\t%P\0'` output into the sparse files (sparseness < 1). */
export function parseSparseFiles(output: string): string[] {
  return output
    .split('\0')
    .filter((record) => record.includes('\t'))
    .map((record) => [Number(record.slice(0, record.indexOf('\t'))), record.slice(record.indexOf('\t') + 1)] as const)
    .filter(([sparseness]) => sparseness < 0.9)
    .map(([, path]) => path);
}

async function runIn(host: Host, dir: string, argv: readonly string[]): Promise<string> {
  const result = await host.run({ argv, cwd: dir, maxBuffer: 256 * 1024 * 1024 });
  if (result.exitCode === 127) {
    throw new DependencyError('TOOL_MISSING', `${argv[0]} is not installed on ${host.name}`, { hint: 'Install the Debian packages attr, acl and util-linux (scripts/setup-system.sh).' });
  }
  // getfattr exits 1 when some file had no xattrs to show; only stderr content means trouble.
  if (result.exitCode !== 0 && result.stdout === '' && result.stderr.trim() !== '') {
    throw new DependencyError('SCAN_FAILED', `${argv.join(' ')} failed in ${dir} on ${host.name}: ${result.stderr.trim()}`);
  }
  return result.stdout;
}

/** Scans a volume on a host for what export-tar would lose. */
export async function scanFidelity(host: Host, dir: string): Promise<FidelityMetadata> {
  const xattrDump = await runIn(host, dir, GETFATTR_ARGV);
  const { xattrFiles, aclFiles } = countXattrFiles(xattrDump);
  const lateMtimes = parseLateMtimes(await runIn(host, dir, LATE_MTIME_ARGV));
  const sparseFiles = parseSparseFiles(await runIn(host, dir, SPARSE_ARGV));
  return { xattrDump, xattrFiles, aclFiles, lateMtimes, sparseFiles };
}

/** True when nothing needs carrying beside the tar stream. */
export function isFidelityTrivial(metadata: FidelityMetadata): boolean {
  return metadata.xattrDump.trim() === '' && metadata.lateMtimes.length === 0 && metadata.sparseFiles.length === 0;
}

/** Decodes a `# file:` path of a getfattr dump (getfattr writes `\ooo` octal for backslash and control bytes). */
export function decodeDumpPath(text: string): Buffer {
  const pieces: Buffer[] = [];
  let last = 0;
  for (const match of text.matchAll(/\\([0-7]{3})/g)) {
    pieces.push(Buffer.from(text.slice(last, match.index), 'utf8'), Buffer.from([parseInt(match[1]!, 8) & 0xff]));
    last = match.index! + match[0].length;
  }
  pieces.push(Buffer.from(text.slice(last), 'utf8'));
  return Buffer.concat(pieces);
}

/** The paths a getfattr dump names (its `# file:` lines), decoded. */
export function dumpPaths(dump: string): Buffer[] {
  return dump
    .split('\n')
    .filter((line) => line.startsWith('# file: '))
    .map((line) => decodeDumpPath(line.slice('# file: '.length)));
}

const SLASH = 0x2f;

/**
 * lstat of `relative` inside `dir`, reached through real directories only: refuses an absolute or
 * `..` path and any parent component that is a symlink or not a directory, so whatever the carried
 * metadata names, nothing outside `dir` is ever reached (the last component is not followed either:
 * callers use no-follow operations on it).
 */
export async function lstatInside(dir: string, relative: string | Buffer): Promise<{ path: Buffer; stats: Stats }> {
  const bytes = typeof relative === 'string' ? Buffer.from(relative, 'utf8') : relative;
  const shown = JSON.stringify(bytes.toString('utf8'));
  const unsafe = (reason: string): DependencyError =>
    new DependencyError('METADATA_PATH_UNSAFE', `carried metadata names ${shown}, ${reason}; nothing of it was applied outside ${dir}`, {
      hint: 'The metadata scanned on the source does not match the archive (the volume changed between the scan and the backup?); run the migration again.',
    });
  if (bytes[0] === SLASH) throw unsafe('an absolute path');
  const parts: Buffer[] = [];
  let start = 0;
  for (let index = 0; index <= bytes.length; index += 1) {
    if (index === bytes.length || bytes[index] === SLASH) {
      const part = bytes.subarray(start, index);
      start = index + 1;
      if (part.length === 0 || part.equals(Buffer.from('.'))) continue;
      if (part.equals(Buffer.from('..'))) throw unsafe('a path with a ".." component');
      parts.push(part);
    }
  }
  let path = Buffer.from(dir, 'utf8');
  for (const [index, part] of parts.entries()) {
    path = Buffer.concat([path, Buffer.from('/'), part]);
    const stats = await lstat(path).catch(() => undefined);
    if (stats === undefined) throw unsafe('which does not exist here');
    if (index === parts.length - 1) return { path, stats };
    if (stats.isSymbolicLink()) throw unsafe(`a path through the symlink ${JSON.stringify(path.subarray(Buffer.byteLength(dir) + 1).toString('utf8'))}`);
    if (!stats.isDirectory()) throw unsafe('a path through something that is not a directory');
  }
  return { path, stats: await lstat(path) };
}

/**
 * Applies carried metadata to an extracted volume, never through a symlink: every path named is
 * first checked to be reached through real directories of the volume (lstatInside); xattrs/ACLs
 * then go to the entry itself (`setfattr -h --restore`, lsetxattr), holes are punched again only in
 * regular files (`fallocate --dig-holes`, keeping the mtime tar restored) and modification times
 * after 2038 are set with lutimes.
 */
export async function applyFidelity(host: Host, dir: string, metadata: FidelityMetadata): Promise<void> {
  if (metadata.xattrDump.trim() !== '') {
    for (const path of dumpPaths(metadata.xattrDump)) await lstatInside(dir, path);
    const result = await host.run({ argv: ['setfattr', '-h', '--restore=-'], cwd: dir, input: metadata.xattrDump });
    if (result.exitCode !== 0) throw new DependencyError('XATTR_RESTORE_FAILED', `setfattr --restore failed in ${dir}: ${result.stderr.trim()}`, { hint: 'Does the target filesystem support xattrs and ACLs (mount option user_xattr, acl)?' });
  }
  for (const path of metadata.sparseFiles) {
    // Digging holes counts as a write and moves the mtime tar restored: keep it and put it back.
    const { path: full, stats: before } = await lstatInside(dir, path);
    if (!before.isFile()) throw new DependencyError('METADATA_PATH_UNSAFE', `carried metadata names ${JSON.stringify(path)} as a sparse file, but it is not a regular file here`);
    const result = await host.run({ argv: ['fallocate', '--dig-holes', '--', path], cwd: dir });
    if (result.exitCode !== 0) throw new DependencyError('SPARSE_FAILED', `fallocate --dig-holes ${path} failed: ${result.stderr.trim()}`);
    await lutimes(full, before.atime, before.mtime);
  }
  for (const [path, seconds] of metadata.lateMtimes) {
    const { path: full, stats } = await lstatInside(dir, path);
    await lutimes(full, stats.atime, Number(seconds));
  }
}

/** Compares source and target metadata; returns human differences (empty = identical). */
export function compareFidelity(source: FidelityMetadata, target: FidelityMetadata): string[] {
  const differences: string[] = [];
  if (source.xattrDump.trim() !== target.xattrDump.trim()) differences.push(`xattrs/ACLs differ (source ${source.xattrFiles} files with xattrs, ${source.aclFiles} with ACLs; target ${target.xattrFiles}, ${target.aclFiles})`);
  const late = (m: FidelityMetadata): string => JSON.stringify([...m.lateMtimes].sort());
  if (late(source) !== late(target)) differences.push(`modification times after 2038 differ (source ${source.lateMtimes.length} files, target ${target.lateMtimes.length})`);
  const sparse = (m: FidelityMetadata): string => JSON.stringify([...m.sparseFiles].sort());
  if (sparse(source) !== sparse(target)) differences.push(`sparse files differ (source ${source.sparseFiles.length}, target ${target.sparseFiles.length})`);
  return differences;
}
