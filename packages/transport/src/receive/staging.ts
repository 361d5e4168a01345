import { chmod, lstat, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { TransportError } from '@deploykit/core';

/** Where a run's staging dir lives: `DIR.staging-<runId>` beside DIR (same filesystem, so rename works). */
export function stagingPathFor(dir: string, runId: string): string {
  return `${resolve(dir)}.staging-${runId}`;
}

/** Where the previous DIR waits during a swap: `DIR.old-<runId>`. */
export function oldPathFor(dir: string, runId: string): string {
  return `${resolve(dir)}.old-${runId}`;
}

/** True when the path exists (without following a final symlink). */
async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Creates a fresh, empty staging dir `DIR.staging-<runId>` beside DIR with mode 0700 (nobody else
 * sees half-extracted data). A leftover with the same run id is removed first. Returns its path.
 * Throws TransportError STAGING_FAILED when the parent is not writable.
 */
export async function createStaging(dir: string, runId: string): Promise<string> {
  const staging = stagingPathFor(dir, runId);
  try {
    await mkdir(dirname(staging), { recursive: true });
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { mode: 0o700 });
    // mkdir's mode is filtered by the umask; make it exact.
    await chmod(staging, 0o700);
  } catch (error) {
    throw new TransportError('STAGING_FAILED', `cannot create staging dir ${staging}: ${(error as Error).message}`, {
      cause: error,
      hint: `Make ${dirname(staging)} writable for the deploy user and check free space there.`,
    });
  }
  return staging;
}

/** What swapIntoPlace did. */
export interface SwapResult {
  /** True when an existing DIR was replaced. */
  readonly replaced: boolean;
  /** Set when the old DIR could not be removed after the swap (the new one is in place anyway). */
  readonly leftover?: string;
}

/**
 * Swaps a filled staging dir into place: DIR -> `DIR.old-<runId>` (if DIR exists), staging -> DIR,
 * then removes the old one. The staging dir was filled with mode 0700; unless `keepMode` says the
 * archive set the root's mode itself, it gets `rootMode`, else the old DIR's mode, else 0755. On an
 * error the old DIR is put back and TransportError SWAP_FAILED is thrown.
 */
export async function swapIntoPlace(
  dir: string,
  staging: string,
  runId: string,
  options: { rootMode?: number; keepMode?: boolean } = {},
): Promise<SwapResult> {
  const target = resolve(dir);
  const old = oldPathFor(target, runId);
  const hadTarget = await exists(target);
  try {
    if (!options.keepMode)
      await chmod(staging, options.rootMode ?? (hadTarget ? (await stat(target)).mode & 0o7777 : 0o755));
    if (hadTarget) {
      await rm(old, { recursive: true, force: true });
      await rename(target, old);
    }
    await rename(staging, target);
  } catch (error) {
    if (hadTarget && !(await exists(target)) && (await exists(old))) await rename(old, target);
    throw new TransportError('SWAP_FAILED', `cannot swap ${staging} into ${target}: ${(error as Error).message}`, {
      cause: error,
      hint: `${target} was left as it was; check permissions on ${dirname(target)}, then retry.`,
    });
  }
  if (!hadTarget) return { replaced: false };
  try {
    await rm(old, { recursive: true, force: true });
    return { replaced: true };
  } catch {
    return { replaced: true, leftover: old };
  }
}

/**
 * Removes leftover `DIR.staging-*` and `DIR.old-*` dirs of one run (or of all runs). If DIR itself
 * is missing while exactly one `DIR.old-*` exists, a swap was interrupted between its two renames:
 * that old dir is the real data and is renamed back instead of removed. Returns the paths removed.
 */
export async function cleanupStaging(dir: string, runId?: string): Promise<string[]> {
  const target = resolve(dir);
  const parent = dirname(target);
  const name = basename(target);
  let names: string[];
  try {
    names = await readdir(parent);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const matches = (kind: 'staging' | 'old', entry: string): boolean =>
    runId === undefined ? entry.startsWith(`${name}.${kind}-`) : entry === `${name}.${kind}-${runId}`;
  const olds = names.filter((entry) => matches('old', entry));
  const stagings = names.filter((entry) => matches('staging', entry));
  const removed: string[] = [];
  if (!(await exists(target)) && olds.length === 1) {
    await rename(join(parent, olds[0]!), target);
    olds.length = 0;
  }
  for (const entry of [...stagings, ...olds]) {
    const path = join(parent, entry);
    await rm(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}
