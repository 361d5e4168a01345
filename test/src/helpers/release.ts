import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './run-deploy.js';

/** A release tarball built for a test (scripts/release.mjs) and the version it carries. */
export interface TestRelease {
  readonly file: string;
  readonly version: string;
}

/**
 * Builds releases of deploy into a fresh temp dir (one per version given; undefined = this checkout's
 * version), runs `fn` with them and removes the dir afterwards. Needs `npm run build` first.
 */
export async function withReleases<T>(
  versions: readonly (string | undefined)[],
  fn: (releases: TestRelease[]) => Promise<T>,
): Promise<T> {
  const out = mkdtempSync(join(tmpdir(), 'deploykit-release-test-'));
  try {
    const releases = versions.map((version) => {
      const printed = execFileSync(
        process.execPath,
        [join(REPO_ROOT, 'scripts/release.mjs'), '--out', out, '--json', ...(version ? ['--version', version] : [])],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      return JSON.parse(printed) as TestRelease;
    });
    return await fn(releases);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
