import type { Lab } from '@deploykit/testlab';
import { quoteWord } from '@deploykit/core';
import { labShell, runOrThrow, type Shell } from './shell.js';

/** One entry of a folder tree as a byte-identical comparison sees it. */
export interface TreeEntry {
  /** Path relative to the fingerprinted folder; `.` is the folder itself. */
  path: string;
  /** find's %y: f file, d directory, l symlink, p fifo, s socket, b/c devices. */
  type: string;
  /** Permission bits in octal, including setuid/setgid/sticky (`640`, `2755`). */
  mode: string;
  uid: number;
  gid: number;
  /** Size in bytes (not for directories: their size depends on the file system's history). */
  size?: number;
  /** SHA-256 of the content (regular files). */
  sha256?: string;
  /** Where a symlink points. */
  target?: string;
  /** For a non-directory with several links inside the tree: every path of its hard-link group, sorted. */
  hardLinks?: string[];
  /** Modification time as find prints it (seconds.fraction), with `mtime: true`. */
  mtime?: string;
}

/** Every entry under a folder, sorted by path. */
export interface TreeFingerprint {
  where: string;
  dir: string;
  entries: TreeEntry[];
}

const FIELDS = 10;
const SHA_MARKER = 'sha256-follows';

/** Builds the shell command that prints the raw fingerprint (NUL-separated find fields, then sha256sum -z lines). */
export function buildTreeFingerprintCommand(dir: string): string {
  const format = ['%P', '%y', '%m', '%U', '%G', '%s', '%l', '%D:%i', '%n', '%T@']
    .map((field) => `${field}\\0`)
    .join('');
  return [
    'set -o pipefail',
    `cd ${quoteWord(dir)}`,
    `find . -printf '${format}'`,
    `printf '${SHA_MARKER}\\0'`,
    'find . -type f -print0 | xargs -0 -r sha256sum -z --',
  ].join(' && ');
}

/** Parses the output of buildTreeFingerprintCommand into sorted entries. */
export function parseTreeFingerprint(raw: string, options: { mtime?: boolean } = {}): TreeEntry[] {
  const parts = raw.split('\0');
  const markerIndex = parts.indexOf(SHA_MARKER);
  if (markerIndex < 0 || markerIndex % FIELDS !== 0)
    throw new Error('tree fingerprint output is malformed (no sha256 marker at a record boundary)');
  const sums = new Map<string, string>();
  for (const line of parts.slice(markerIndex + 1)) {
    if (line === '') continue;
    // sha256sum -z prints "<64 hex>  ./path" without escaping the name.
    sums.set(line.slice(66).replace(/^\.\//, ''), line.slice(0, 64));
  }
  const entries: TreeEntry[] = [];
  const inodes = new Map<string, string[]>();
  const inodeOf = new Map<string, string>();
  for (let index = 0; index < markerIndex; index += FIELDS) {
    const [path, type, mode, uid, gid, size, target, inode, links, mtime] = parts.slice(index, index + FIELDS) as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const entry: TreeEntry = { path: path === '' ? '.' : path, type, mode, uid: Number(uid), gid: Number(gid) };
    if (type !== 'd') entry.size = Number(size);
    if (type === 'f') {
      const sum = sums.get(path);
      if (sum === undefined) throw new Error(`no sha256 for ${path}`);
      entry.sha256 = sum;
    }
    if (type === 'l') entry.target = target;
    if (options.mtime) entry.mtime = mtime;
    if (type !== 'd' && Number(links) > 1) {
      inodes.set(inode, [...(inodes.get(inode) ?? []), entry.path]);
      inodeOf.set(entry.path, inode);
    }
    entries.push(entry);
  }
  for (const entry of entries) {
    const inode = inodeOf.get(entry.path);
    const group = inode === undefined ? undefined : inodes.get(inode);
    // A file linked only from outside the tree has nothing to compare inside it.
    if (group && group.length > 1) entry.hardLinks = [...group].sort();
  }
  return entries.sort((left, right) => (left.path < right.path ? -1 : left.path > right.path ? 1 : 0));
}

/**
 * Lists every entry under `dir` (type, mode, owner, size, sha256, symlink target, hard-link group) on a lab host or a Shell.
 * Throws when the folder cannot be read.
 */
export async function treeFingerprint(
  lab: Lab,
  host: string,
  dir: string,
  options?: { mtime?: boolean },
): Promise<TreeFingerprint>;
export async function treeFingerprint(
  shell: Shell,
  dir: string,
  options?: { mtime?: boolean },
): Promise<TreeFingerprint>;
export async function treeFingerprint(
  first: Lab | Shell,
  second: string,
  third?: string | { mtime?: boolean },
  fourth?: { mtime?: boolean },
): Promise<TreeFingerprint> {
  const shell = 'run' in first ? first : labShell(first, second);
  const dir = 'run' in first ? second : String(third);
  const options = ('run' in first ? (third as { mtime?: boolean } | undefined) : fourth) ?? {};
  const raw = await runOrThrow(shell, buildTreeFingerprintCommand(dir));
  return { where: shell.where, dir, entries: parseTreeFingerprint(raw, options) };
}

/** Human-readable differences between two fingerprints (`- path` missing, `+ path` extra, `~ path: field a -> b`); empty when identical. */
export function diffTreeFingerprints(before: TreeFingerprint, after: TreeFingerprint): string[] {
  const afterByPath = new Map(after.entries.map((entry) => [entry.path, entry]));
  const beforePaths = new Set(before.entries.map((entry) => entry.path));
  const lines: string[] = [];
  for (const entry of before.entries) {
    const other = afterByPath.get(entry.path);
    if (!other) {
      lines.push(`- ${entry.path}`);
      continue;
    }
    const keys = new Set([...Object.keys(entry), ...Object.keys(other)] as (keyof TreeEntry)[]);
    for (const key of keys) {
      const left = JSON.stringify(entry[key]);
      const right = JSON.stringify(other[key]);
      if (left !== right) lines.push(`~ ${entry.path}: ${key} ${left} -> ${right}`);
    }
  }
  for (const entry of after.entries) if (!beforePaths.has(entry.path)) lines.push(`+ ${entry.path}`);
  return lines;
}
