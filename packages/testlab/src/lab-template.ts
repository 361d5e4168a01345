import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findRepoRoot } from './lab-paths.js';

/**
 * Returns a cached, initialised data dir (`<cache>/<kind>-<hash>/data`) for `kind`, building it with `build(dir)` the first time.
 * Initialising a cluster takes a second or more; copying a ready one takes ~0.1 s. The key hashes
 * whatever shapes the template, so a changed setting builds a new one. Concurrent builders race
 * safely: each builds in its own temp dir and the first rename wins.
 */
export async function ensureDataTemplate(
  kind: string,
  shape: string,
  build: (dir: string) => Promise<void>,
): Promise<string> {
  // A build cache, kept where npm tools keep theirs: inside the checkout, gone with node_modules,
  // never a stray folder in /tmp after the tests (DEPLOY_LAB_CACHE overrides).
  const cacheRoot = process.env.DEPLOY_LAB_CACHE ?? join(findRepoRoot(), 'node_modules', '.cache', 'deploykit-lab');
  await mkdir(cacheRoot, { recursive: true });
  // Server users (postgres, mysql) must be able to reach the copies' source.
  await chmod(cacheRoot, 0o755);
  const key = createHash('sha256').update(shape).digest('hex').slice(0, 12);
  const finalDir = join(cacheRoot, `${kind}-${key}`);
  if (existsSync(join(finalDir, '.ready'))) return join(finalDir, 'data');
  const workDir = join(cacheRoot, `${kind}-${key}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(workDir, { mode: 0o755 });
    await chmod(workDir, 0o755);
    await build(join(workDir, 'data'));
    await writeFile(join(workDir, '.ready'), `${new Date().toISOString()}\n`);
    // A leftover without .ready is a crashed build; a ready one is never removed (others copy from it).
    if (existsSync(finalDir) && !existsSync(join(finalDir, '.ready')))
      await rm(finalDir, { recursive: true, force: true });
    try {
      await rename(workDir, finalDir);
    } catch (error) {
      // Another lab won the race; its template is as good as ours.
      if (!existsSync(join(finalDir, '.ready'))) throw error;
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  // Templates of older lab settings are dead weight (tens of MB each); builds in progress are kept.
  for (const name of await readdir(cacheRoot)) {
    if (name.startsWith(`${kind}-`) && name !== `${kind}-${key}` && !name.includes('.tmp-')) {
      await rm(join(cacheRoot, name), { recursive: true, force: true });
    }
  }
  return join(finalDir, 'data');
}
