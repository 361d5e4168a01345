import { writeFile } from 'node:fs/promises';
import { DependencyError, type Host } from '@deploykit/core';
import { decodeDumpPath, GETFATTR_ARGV, lstatInside } from '../migrate/fidelity.js';
import type { TargetJournal } from './target-journal.js';

/**
 * A cutover changes a copy in place, so the xattrs and ACLs of its entries must end up exactly the
 * source's: `setfattr --restore` only sets what a dump names, so an attribute the source no longer has
 * would stay. Here every attribute the copy has and the wanted dump does not name for that entry is
 * removed first (lremovexattr: never through a symlink), then the dump is restored.
 */

/** The attribute names per entry of a getfattr dump, keyed by the `# file:` path as printed. */
export function xattrNamesByPath(dump: string): Map<string, Set<string>> {
  const names = new Map<string, Set<string>>();
  let current: Set<string> | undefined;
  for (const line of dump.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Set();
      names.set(line.slice('# file: '.length), current);
    } else if (current !== undefined && /^[a-z]+\.[^=]+=/.test(line)) {
      current.add(line.slice(0, line.indexOf('=')));
    } else if (current !== undefined && /^[a-z]+\.[^=]+$/.test(line)) {
      // An attribute with an empty value: getfattr prints the bare name.
      current.add(line);
    }
  }
  return names;
}

/** What the copy has that the wanted dump does not: [path as printed, attribute name] pairs. */
export function extraXattrs(current: string, wanted: string): [string, string][] {
  const want = xattrNamesByPath(wanted);
  const extra: [string, string][] = [];
  for (const [path, names] of xattrNamesByPath(current)) {
    for (const name of names) if (!want.get(path)?.has(name)) extra.push([path, name]);
  }
  return extra;
}

const REMOVE_SCRIPT = `
import base64, json, os, sys
for path, name in json.load(sys.stdin):
    os.removexattr(base64.b64decode(path), name, follow_symlinks=False)
`;

/** argv of the removal (JSON [[path base64, name], ...] on stdin); a cutover's metadata step plans it. */
export function removeXattrsArgv(): string[] {
  return ['python3', '-c', REMOVE_SCRIPT];
}

/** The copy's xattr/ACL dump (getfattr -R -d -m - -h -e base64 in dir). */
export async function dumpXattrs(host: Host, dir: string): Promise<string> {
  const result = await host.run({ argv: GETFATTR_ARGV, cwd: dir, maxBuffer: 256 * 1024 * 1024 });
  if (result.exitCode === 127)
    throw new DependencyError('TOOL_MISSING', `getfattr is not installed on ${host.name}`, {
      hint: 'Install the Debian package attr.',
    });
  // getfattr exits 1 when some file had no xattrs to show; only stderr content means trouble.
  if (result.exitCode !== 0 && result.stdout === '' && result.stderr.trim() !== '')
    throw new DependencyError('SCAN_FAILED', `getfattr failed in ${dir} on ${host.name}: ${result.stderr.trim()}`);
  return result.stdout;
}

/** Makes the xattrs and ACLs of the entries under dir exactly `wanted`'s (a getfattr dump made in the same way). Returns how many attributes it removed. */
export async function makeXattrsExactly(host: Host, dir: string, wanted: string): Promise<number> {
  const extra = extraXattrs(await dumpXattrs(host, dir), wanted);
  if (extra.length > 0) {
    const pairs: [string, string][] = [];
    for (const [path, name] of extra) {
      const { path: full } = await lstatInside(dir, decodeDumpPath(path));
      pairs.push([full.toString('base64'), name]);
    }
    const result = await host.run({ argv: removeXattrsArgv(), input: JSON.stringify(pairs) });
    if (result.exitCode !== 0)
      throw new DependencyError(
        'XATTR_REMOVE_FAILED',
        `removing ${extra.length} xattr(s) the source no longer has failed in ${dir}: ${result.stderr.trim().split('\n').slice(-1).join('')}`,
      );
  }
  if (wanted.trim() !== '') {
    for (const path of xattrNamesByPath(wanted).keys()) await lstatInside(dir, decodeDumpPath(path));
    const result = await host.run({ argv: ['setfattr', '-h', '--restore=-'], cwd: dir, input: wanted });
    if (result.exitCode !== 0)
      throw new DependencyError(
        'XATTR_RESTORE_FAILED',
        `setfattr --restore failed in ${dir}: ${result.stderr.trim()}`,
        { hint: 'Does the target filesystem support xattrs and ACLs (mount option user_xattr, acl)?' },
      );
  }
  return extra.length;
}

/**
 * Before a cutover sets the source's xattrs on a copy: keeps the copy's own in `undoFile` (0600) and
 * journals their restore, so a rollback puts them back exactly (it runs before the renames are undone).
 */
export async function keepXattrsForUndo(
  host: Host,
  dir: string,
  undoFile: string,
  journal: TargetJournal,
): Promise<void> {
  await writeFile(undoFile, await dumpXattrs(host, dir), { mode: 0o600 });
  journal.undo({ kind: 'restore-xattrs', dir, file: undoFile });
}
