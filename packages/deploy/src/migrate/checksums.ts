import { createHash } from 'node:crypto';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { SpecialFileEntry } from './archive-listing.js';

/** One regular file of a tree: size and SHA-256. */
export interface FileDigest {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

/** Read size of hashFile: 1 MiB reads into a reused buffer (a 64 KiB stream chunk per read made garbage V8 freed late). */
const HASH_READ_BYTES = 1024 * 1024;
/** Buffers of finished hashFile calls, reused by the next ones (at most a few: digestTree hashes HASH_CONCURRENCY files at a time). */
const idleHashBuffers: Buffer[] = [];

/**
 * SHA-256 of a file, read in 1 MiB pieces into a reused buffer: hashing a whole volume allocates
 * nothing per read, so the process stays at its usual size (a read stream's fresh 64 KiB chunk per
 * read took `deploy receive` to over 1 GiB RSS while it verified a 512 MiB volume).
 */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const buffer = idleHashBuffers.pop() ?? Buffer.allocUnsafeSlow(HASH_READ_BYTES);
  const handle = await open(path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
    if (idleHashBuffers.length < 4) idleHashBuffers.push(buffer);
  }
}

/**
 * Files hashed at once by digestTree: reads of the next files overlap the hashing of others (the
 * per-file open/stat/read latency dominated with many small files; measured on 2 cores, 7,681 files
 * of 1 GiB on the idle machine: 3.2-3.3 s one at a time, 2.2-2.4 s four at a time). Each holds one 1 MiB read buffer.
 */
const HASH_CONCURRENCY = 4;

/** Every regular file under `dir` (paths relative, sorted) with size and SHA-256; symlinks are not followed. */
export async function digestTree(
  dir: string,
  prefix = '',
  hashOnly?: (path: string) => boolean,
): Promise<FileDigest[]> {
  const files: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const entries = await readdir(join(dir, relative), { withFileTypes: true });
    for (const entry of entries) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) files.push(path);
    }
  };
  await walk('');
  const out: FileDigest[] = new Array(files.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let index = next++; index < files.length; index = next++) {
      const path = files[index]!;
      const full = join(dir, path);
      // hashOnly: the others get an empty hash (the caller compares their size only).
      out[index] = {
        path: `${prefix}${path}`,
        size: (await lstat(full)).size,
        sha256: hashOnly === undefined || hashOnly(path) ? await hashFile(full) : '',
      };
    }
  };
  await Promise.all(Array.from({ length: Math.min(HASH_CONCURRENCY, files.length) }, worker));
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Differences between an expected and an actual file list, in words (at most `limit` listed). */
export function compareDigests(expected: readonly FileDigest[], actual: readonly FileDigest[], limit = 10): string[] {
  const byPath = new Map(actual.map((file) => [file.path, file]));
  const problems: string[] = [];
  for (const file of expected) {
    const got = byPath.get(file.path);
    if (!got) problems.push(`missing ${file.path}`);
    else if (got.size !== file.size) problems.push(`${file.path}: ${got.size} bytes, expected ${file.size}`);
    else if (got.sha256 !== file.sha256) problems.push(`${file.path}: SHA-256 differs`);
    byPath.delete(file.path);
  }
  for (const path of byPath.keys()) problems.push(`unexpected ${path}`);
  return problems.length > limit ? [...problems.slice(0, limit), `... and ${problems.length - limit} more`] : problems;
}

/** [path, target] of every symlink under `dir` (never followed), sorted by path. */
export async function listSymlinks(dir: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await readdir(join(dir, relative), { withFileTypes: true })) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isSymbolicLink()) out.push([path, await readlink(join(dir, path))]);
    }
  };
  await walk('');
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Linux dev_t: major and minor of a device number (glibc's encoding). */
function deviceNumbers(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/** Every FIFO and device node under `dir` (devices with major/minor), sorted by path; symlinks are not followed. */
export async function listSpecialFiles(dir: string): Promise<SpecialFileEntry[]> {
  const out: SpecialFileEntry[] = [];
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await readdir(join(dir, relative), { withFileTypes: true })) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFIFO()) out.push({ path, type: 'fifo' });
      else if (entry.isCharacterDevice() || entry.isBlockDevice()) {
        out.push({
          path,
          type: entry.isCharacterDevice() ? 'char' : 'block',
          ...deviceNumbers((await lstat(join(dir, path), { bigint: true })).rdev),
        });
      }
    }
  };
  await walk('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Differences between expected and actual special files (type, and a device's major/minor when known), in words. */
export function compareSpecialFiles(
  expected: readonly SpecialFileEntry[],
  actual: readonly SpecialFileEntry[],
  limit = 10,
): string[] {
  const byPath = new Map(actual.map((entry) => [entry.path, entry]));
  const problems: string[] = [];
  const device = (entry: SpecialFileEntry): string =>
    entry.major === undefined ? entry.type : `${entry.type} ${entry.major},${String(entry.minor)}`;
  for (const entry of expected) {
    const got = byPath.get(entry.path);
    if (got === undefined) problems.push(`missing ${entry.type} ${entry.path}`);
    else if (
      got.type !== entry.type ||
      (entry.major !== undefined && (got.major !== entry.major || got.minor !== entry.minor))
    )
      problems.push(`${entry.path} is a ${device(got)}, expected a ${device(entry)}`);
    byPath.delete(entry.path);
  }
  for (const entry of byPath.values()) problems.push(`unexpected ${entry.type} ${entry.path}`);
  return problems.length > limit ? [...problems.slice(0, limit), `... and ${problems.length - limit} more`] : problems;
}

/** Differences between expected and actual symlinks (path and target), in words (at most `limit` listed). */
export function compareSymlinks(
  expected: readonly (readonly [string, string])[],
  actual: readonly (readonly [string, string])[],
  limit = 10,
): string[] {
  const byPath = new Map(actual.map(([path, target]) => [path, target]));
  const problems: string[] = [];
  for (const [path, target] of expected) {
    const got = byPath.get(path);
    if (got === undefined) problems.push(`missing symlink ${path}`);
    else if (got !== target)
      problems.push(`symlink ${path} points to ${JSON.stringify(got)}, expected ${JSON.stringify(target)}`);
    byPath.delete(path);
  }
  for (const path of byPath.keys()) problems.push(`unexpected symlink ${path}`);
  return problems.length > limit ? [...problems.slice(0, limit), `... and ${problems.length - limit} more`] : problems;
}
