import { access, mkdir, readdir, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DependencyError, UsageError } from '@deploykit/core';
import { runLabCommand } from './lab-run.js';
import { SYSTEM_PATH } from './lab-paths.js';

/**
 * Installs a deploykit release tarball into `prefix` with npm, the way docs/cli.md tells operators to
 * (`npm install -g --prefix PREFIX FILE`); throws DependencyError with npm's output when it fails.
 */
export async function installLabRelease(release: string, prefix: string): Promise<void> {
  const file = resolve(release);
  await access(file).catch(() => {
    throw new UsageError('LAB_RELEASE_MISSING', `release ${file} does not exist`, {
      hint: 'Build it with `npm run release` (dist-release/deploykit-<version>.tgz).',
    });
  });
  await mkdir(prefix, { recursive: true });
  // --offline: the release has no dependencies, so nothing is fetched (and a lab never reaches a registry).
  const result = await runLabCommand(
    [
      'npm',
      'install',
      '--global',
      '--prefix',
      prefix,
      '--offline',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      file,
    ],
    { timeoutMs: 120_000 },
  );
  if (result.exitCode !== 0) {
    throw new DependencyError(
      'LAB_RELEASE_INSTALL',
      `npm could not install ${file} into ${prefix} (exit ${result.exitCode}): ${result.stderr.trim().slice(-800)}`,
      {
        hint: 'Rebuild the release with `npm run release` and try again.',
      },
    );
  }
}

/**
 * Makes `binDir` a folder of symlinks to every program of the system PATH (first one of a name wins)
 * except `hidden`: a lab host whose PATH uses it lacks those tools, while the machine keeps them.
 */
export async function buildHiddenToolsBin(binDir: string, hidden: readonly string[]): Promise<void> {
  await mkdir(binDir, { recursive: true });
  const seen = new Set<string>(hidden);
  for (const dir of SYSTEM_PATH.split(':')) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (seen.has(name)) continue;
      seen.add(name);
      await symlink(join(dir, name), join(binDir, name));
    }
  }
}
