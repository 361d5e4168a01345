import type { Stats } from 'node:fs';
import { lstat, lutimes } from 'node:fs/promises';
import type { Host } from '@deploykit/core';
import { DependencyError } from '@deploykit/core';

/** The volume root's own metadata: export-tar strips its entry (`--strip-components`), so tar never sets it. */
export interface RootMetadata {
  /** Permission bits with setuid/setgid/sticky (`st_mode & 0o7777`). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Modification time in nanoseconds since the epoch, as a decimal string (exact; a JS number is not). */
  readonly mtimeNs: string;
}

/**
 * What `borg export-tar | tar -x` loses (measured on borg 1.2.4: DESIGN §6), found on a volume and
 * carried by a side channel: xattrs and ACLs (getfattr dump, ACLs are system.posix_acl_* xattrs;
 * the dump covers the root `.` too), modification times after 2038-01-19 (clamped by export-tar),
 * sparse files (written out in full), sub-second modification times (export-tar keeps whole
 * seconds) and the volume root's own mode, owner and mtime. Paths are relative to the volume root.
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
  /**
   * [path, mtime in ns as a decimal string] of every entry below the root (files, directories,
   * symlinks...) whose mtime has a sub-second part. Absent in contents from a deploykit before 0.1.x.
   */
  readonly subsecondMtimes?: readonly (readonly [string, string])[];
  /** The root's own metadata; absent in contents from an older deploykit. */
  readonly root?: RootMetadata;
}

/** Seconds since the epoch of 2038-01-19T03:14:07Z, the last second a signed 32-bit time holds. */
export const Y2038_SECONDS = 2147483647;

/** argv dumping every xattr (ACLs included) under `.` without following symlinks. */
export const GETFATTR_ARGV = ['getfattr', '-R', '-d', '-m', '-', '-h', '-e', 'base64', '.'] as const;
/** argv listing files (NUL-separated) modified after 2038 with their mtime. */
export const LATE_MTIME_ARGV = ['find', '.', '-newermt', `@${Y2038_SECONDS}`, '-printf', '%P\\t%T@\\0'] as const;
/** argv listing regular non-empty files with their sparseness (allocated/size). */
export const SPARSE_ARGV = ['find', '.', '-type', 'f', '-size', '+0', '-printf', '%S\\t%P\\0'] as const;

/**
 * One python3 process per volume (python3 is always there with borg) scans or applies modification
 * times in nanoseconds, exactly (Node's lutimes takes a double and loses ~100 ns), and the root's
 * metadata. Paths travel as JSON strings; names that are not UTF-8 round-trip as lone surrogates
 * (surrogateescape). Applying never passes through a symlink: each parent is opened with
 * O_NOFOLLOW|O_DIRECTORY relative to the previous one, the entry itself is changed with
 * follow_symlinks=False. A carried mtime is applied only when its whole seconds equal what tar
 * restored (otherwise the archive holds a newer version of the entry than the scan saw: tar's time
 * stays). Directories get theirs after every other entry, the root last. Exit 3 = an unsafe path.
 */
export const MTIME_SCRIPT = `
import json, os, stat, sys
def ns_list(all_entries):
    out = []
    stack = ['']
    while stack:
        rel = stack.pop()
        with os.scandir(rel or '.') as it:
            for e in it:
                path = rel + '/' + e.name if rel else e.name
                st = e.stat(follow_symlinks=False)
                if all_entries or st.st_mtime_ns % 1000000000:
                    out.append([path, str(st.st_mtime_ns)])
                if stat.S_ISDIR(st.st_mode):
                    stack.append(path)
    return out
def root_meta():
    st = os.lstat('.')
    return {'mode': stat.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid, 'mtimeNs': str(st.st_mtime_ns)}
class Unsafe(Exception):
    pass
FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
fds = {}
def parent_fd(parts):
    # The directory holding an entry, reached through real directories only; None when it is gone.
    key = '/'.join(parts)
    if key in fds:
        return fds[key]
    if len(fds) > 1000:
        for value in fds.values():
            if value is not None: os.close(value)
        fds.clear()
    fd = parent_fd(parts[:-1]) if parts else None
    if parts and fd is None:
        fds[key] = None
        return None
    try:
        child = os.open(parts[-1], FLAGS, dir_fd=fd) if parts else os.open('.', FLAGS)
    except FileNotFoundError:
        child = None
    except OSError as error:
        raise Unsafe('a path through ' + json.dumps(key) + ', which is a symlink or not a directory (' + error.strerror + ')')
    fds[key] = child
    return child
def apply(doc):
    applied = skipped_newer = missing = 0
    newer = []
    dirs = []
    for path, ns in doc['mtimes']:
        parts = [p for p in path.split('/') if p not in ('', '.')]
        if not parts or path.startswith('/') or '..' in parts:
            raise Unsafe(json.dumps(path) + ' is not a relative path below the volume')
        fd = parent_fd(parts[:-1])
        if fd is None:
            missing += 1
            continue
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            missing += 1
            continue
        ns = int(ns)
        if st.st_mtime_ns // 1000000000 != ns // 1000000000:
            skipped_newer += 1
            if len(newer) < 5: newer.append(path)
            continue
        if stat.S_ISDIR(st.st_mode):
            dirs.append((parts, st.st_atime_ns, ns))
            continue
        os.utime(parts[-1], ns=(st.st_atime_ns, ns), dir_fd=fd, follow_symlinks=False)
        applied += 1
    for parts, atime, ns in sorted(dirs, key=lambda d: -len(d[0])):
        os.utime(parts[-1], ns=(atime, ns), dir_fd=parent_fd(parts[:-1]), follow_symlinks=False)
        applied += 1
    root = doc.get('root')
    if root is not None:
        st = os.lstat('.')
        if not stat.S_ISDIR(st.st_mode): raise Unsafe('the volume root is not a directory')
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (root['uid'], root['gid']):
            os.chown('.', root['uid'], root['gid'], follow_symlinks=False)
        os.chmod('.', root['mode'])
        os.utime('.', ns=(st.st_atime_ns, int(root['mtimeNs'])))
    return {'applied': applied, 'skippedNewer': skipped_newer, 'newer': newer, 'missing': missing}
try:
    if sys.argv[1] == 'apply':
        print(json.dumps(apply(json.load(sys.stdin))))
    else:
        print(json.dumps({'mtimes': ns_list(sys.argv[1] == 'scan-all'), 'root': root_meta()}))
except Unsafe as error:
    print(str(error), file=sys.stderr)
    sys.exit(3)
`;

/** argv of MTIME_SCRIPT: `scan` (sub-second mtimes and the root), `scan-all` (every entry's mtime), `apply` (JSON on stdin). */
export function mtimeArgv(mode: 'scan' | 'scan-all' | 'apply'): string[] {
  return ['python3', '-c', MTIME_SCRIPT, mode];
}

/** Parses a getfattr dump: counts files with plain xattrs and with ACLs. */
export function countXattrFiles(dump: string): { xattrFiles: number; aclFiles: number } {
  let xattrFiles = 0;
  let aclFiles = 0;
  for (const block of dump.split(/\n(?=# file: )/)) {
    const names = block
      .split('\n')
      .filter((line) => /^[a-z]+\.[^=]+=/.test(line))
      .map((line) => line.slice(0, line.indexOf('=')));
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
    throw new DependencyError('TOOL_MISSING', `${argv[0]} is not installed on ${host.name}`, {
      hint: 'Install the Debian packages attr, acl and util-linux (scripts/setup-system.sh).',
    });
  }
  // getfattr exits 1 when some file had no xattrs to show; only stderr content means trouble.
  if (result.exitCode !== 0 && result.stdout === '' && result.stderr.trim() !== '') {
    throw new DependencyError(
      'SCAN_FAILED',
      `${argv.join(' ')} failed in ${dir} on ${host.name}: ${result.stderr.trim()}`,
    );
  }
  return result.stdout;
}

/** Scans ns mtimes (sub-second ones, or every entry's with `all`) and the root's metadata with MTIME_SCRIPT. */
export async function scanMtimes(
  host: Host,
  dir: string,
  all = false,
): Promise<{ mtimes: [string, string][]; root: RootMetadata }> {
  const output = await runIn(host, dir, mtimeArgv(all ? 'scan-all' : 'scan'));
  try {
    return JSON.parse(output) as { mtimes: [string, string][]; root: RootMetadata };
  } catch {
    throw new DependencyError(
      'SCAN_FAILED',
      `the mtime scan of ${dir} on ${host.name} printed no result${output.trim() === '' ? '' : `: ${output.trim().slice(0, 200)}`}`,
    );
  }
}

/** Scans a volume on a host for what export-tar would lose. */
export async function scanFidelity(host: Host, dir: string): Promise<FidelityMetadata> {
  return (await scanVolumeMetadata(host, dir, { allMtimes: false })).fidelity;
}

/**
 * scanFidelity, its four walks of the volume at once (read-only; each its own process), and with
 * `allMtimes` every entry's ns mtime too (a cutover needs them: decision 0008), from the same walk
 * the sub-second ones are taken from.
 */
export async function scanVolumeMetadata(
  host: Host,
  dir: string,
  options: { allMtimes: boolean },
): Promise<{ fidelity: FidelityMetadata; allMtimes?: [string, string][] }> {
  const [xattrDump, late, sparse, scanned] = await Promise.all([
    runIn(host, dir, GETFATTR_ARGV),
    runIn(host, dir, LATE_MTIME_ARGV),
    runIn(host, dir, SPARSE_ARGV),
    scanMtimes(host, dir, options.allMtimes),
  ]);
  const { xattrFiles, aclFiles } = countXattrFiles(xattrDump);
  const subsecondMtimes = options.allMtimes ? keepSubsecondMtimes(scanned.mtimes) : scanned.mtimes;
  const fidelity: FidelityMetadata = {
    xattrDump,
    xattrFiles,
    aclFiles,
    lateMtimes: parseLateMtimes(late),
    sparseFiles: parseSparseFiles(sparse),
    subsecondMtimes,
    root: scanned.root,
  };
  return options.allMtimes ? { fidelity, allMtimes: scanned.mtimes } : { fidelity };
}

/** The entries of an all-entries mtime scan whose mtime has a sub-second part, in scan order (what `scan` alone prints). */
export function keepSubsecondMtimes(mtimes: readonly (readonly [string, string])[]): [string, string][] {
  return mtimes.filter(([, ns]) => BigInt(ns) % 1_000_000_000n !== 0n).map(([path, ns]) => [path, ns]);
}

/** True when nothing needs carrying beside the tar stream (never for a scan that saw the root: its metadata always travels). */
export function isFidelityTrivial(metadata: FidelityMetadata): boolean {
  return (
    metadata.xattrDump.trim() === '' &&
    metadata.lateMtimes.length === 0 &&
    metadata.sparseFiles.length === 0 &&
    (metadata.subsecondMtimes ?? []).length === 0 &&
    metadata.root === undefined
  );
}

/** What applying ns mtimes did: entries set, entries whose archived version is newer than the scan (tar's time kept), entries gone. */
export interface MtimeApplyResult {
  readonly applied: number;
  readonly skippedNewer: number;
  readonly newer: readonly string[];
  readonly missing: number;
}

/** Applies carried ns mtimes and the root's metadata (MTIME_SCRIPT): after everything else that writes to the volume. */
export async function applyMtimes(
  host: Host,
  dir: string,
  metadata: Pick<FidelityMetadata, 'subsecondMtimes' | 'root'>,
): Promise<MtimeApplyResult> {
  const empty = { applied: 0, skippedNewer: 0, newer: [], missing: 0 };
  if ((metadata.subsecondMtimes ?? []).length === 0 && metadata.root === undefined) return empty;
  const input = JSON.stringify({ mtimes: metadata.subsecondMtimes ?? [], root: metadata.root ?? null });
  const result = await host.run({ argv: mtimeArgv('apply'), cwd: dir, input, maxBuffer: 1024 * 1024 });
  if (result.exitCode === 3) {
    throw new DependencyError(
      'METADATA_PATH_UNSAFE',
      `carried metadata names ${result.stderr.trim()}; nothing was applied through it, outside ${dir}`,
      {
        hint: 'The metadata scanned on the source does not match the archive (the volume changed between the scan and the backup?); run the migration again.',
      },
    );
  }
  if (result.exitCode === 127)
    throw new DependencyError('TOOL_MISSING', `python3 is not installed on ${host.name}`, {
      hint: 'Install python3 (borg depends on it).',
    });
  if (result.exitCode !== 0)
    throw new DependencyError(
      'MTIME_APPLY_FAILED',
      `setting modification times in ${dir} failed: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  return JSON.parse(result.stdout) as MtimeApplyResult;
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
    new DependencyError(
      'METADATA_PATH_UNSAFE',
      `carried metadata names ${shown}, ${reason}; nothing of it was applied outside ${dir}`,
      {
        hint: 'The metadata scanned on the source does not match the archive (the volume changed between the scan and the backup?); run the migration again.',
      },
    );
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
    if (stats.isSymbolicLink())
      throw unsafe(
        `a path through the symlink ${JSON.stringify(path.subarray(Buffer.byteLength(dir) + 1).toString('utf8'))}`,
      );
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
    if (result.exitCode !== 0)
      throw new DependencyError(
        'XATTR_RESTORE_FAILED',
        `setfattr --restore failed in ${dir}: ${result.stderr.trim()}`,
        { hint: 'Does the target filesystem support xattrs and ACLs (mount option user_xattr, acl)?' },
      );
  }
  for (const path of metadata.sparseFiles) {
    // Digging holes counts as a write and moves the mtime tar restored: keep it and put it back.
    const { path: full, stats: before } = await lstatInside(dir, path);
    if (!before.isFile())
      throw new DependencyError(
        'METADATA_PATH_UNSAFE',
        `carried metadata names ${JSON.stringify(path)} as a sparse file, but it is not a regular file here`,
      );
    const result = await host.run({ argv: ['fallocate', '--dig-holes', '--', path], cwd: dir });
    if (result.exitCode !== 0)
      throw new DependencyError('SPARSE_FAILED', `fallocate --dig-holes ${path} failed: ${result.stderr.trim()}`);
    await lutimes(full, before.atime, before.mtime);
  }
  for (const [path, seconds] of metadata.lateMtimes) {
    const { path: full, stats } = await lstatInside(dir, path);
    await lutimes(full, stats.atime, Number(seconds));
  }
  // Last: nothing may write into a directory after its mtime is set.
  await applyMtimes(host, dir, metadata);
}

/**
 * Differences between carried ns mtimes and a target scan of every entry (scanMtimes all): an entry
 * whose whole seconds match must match to the nanosecond; one whose seconds differ was newer in the
 * archive than in the scan (tar's time is right) and one that is gone is the file listing's business.
 */
export function compareMtimes(
  source: Pick<FidelityMetadata, 'subsecondMtimes' | 'root'>,
  target: { mtimes: readonly (readonly [string, string])[]; root: RootMetadata },
  options: { owner: boolean },
): string[] {
  const differences: string[] = [];
  const got = new Map(target.mtimes.map(([path, ns]) => [path, ns]));
  const wrong: string[] = [];
  for (const [path, ns] of source.subsecondMtimes ?? []) {
    const there = got.get(path);
    if (there === undefined || there.slice(0, -9) !== ns.slice(0, -9)) continue;
    if (there !== ns) wrong.push(path);
  }
  if (wrong.length > 0)
    differences.push(
      `${wrong.length} modification times differ below the second (${wrong
        .slice(0, 5)
        .map((path) => JSON.stringify(path))
        .join(', ')}${wrong.length > 5 ? ', ...' : ''})`,
    );
  const root = source.root;
  if (root !== undefined) {
    const fields: (keyof RootMetadata)[] = options.owner ? ['mode', 'uid', 'gid', 'mtimeNs'] : ['mode', 'mtimeNs'];
    for (const field of fields) {
      if (root[field] !== target.root[field])
        differences.push(
          `the volume root's ${field} is ${field === 'mode' ? target.root.mode.toString(8) : target.root[field]}, the source's ${field === 'mode' ? root.mode.toString(8) : root[field]}`,
        );
    }
  }
  return differences;
}

/** Compares source and target metadata; returns human differences (empty = identical). Sub-second mtimes and the root: compareMtimes. */
export function compareFidelity(source: FidelityMetadata, target: FidelityMetadata): string[] {
  const differences: string[] = [];
  if (source.xattrDump.trim() !== target.xattrDump.trim())
    differences.push(
      `xattrs/ACLs differ (source ${source.xattrFiles} files with xattrs, ${source.aclFiles} with ACLs; target ${target.xattrFiles}, ${target.aclFiles})`,
    );
  const late = (m: FidelityMetadata): string => JSON.stringify([...m.lateMtimes].sort());
  if (late(source) !== late(target))
    differences.push(
      `modification times after 2038 differ (source ${source.lateMtimes.length} files, target ${target.lateMtimes.length})`,
    );
  const sparse = (m: FidelityMetadata): string => JSON.stringify([...m.sparseFiles].sort());
  if (sparse(source) !== sparse(target))
    differences.push(`sparse files differ (source ${source.sparseFiles.length}, target ${target.sparseFiles.length})`);
  return differences;
}
