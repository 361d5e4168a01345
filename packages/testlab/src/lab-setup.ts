import { join } from 'node:path';
import { DependencyError } from '@deploykit/core';
import { listMissingLabTools } from './lab-paths.js';
import { runLabCommand } from './lab-run.js';

/**
 * Makes sure sshd, borg, PostgreSQL (and MariaDB when asked) are installed, running the repo's
 * scripts/setup-system.sh when they are not; throws DependencyError when they are still missing.
 */
export async function ensureLabTools(
  repoRoot: string,
  options: { postgres: boolean; mariadb: boolean },
): Promise<void> {
  if (listMissingLabTools(options).length === 0) return;
  const script = join(repoRoot, 'scripts', 'setup-system.sh');
  const result = await runLabCommand(['bash', script], { cwd: repoRoot, timeoutMs: 15 * 60_000 });
  const missing = listMissingLabTools(options);
  if (missing.length > 0) {
    throw new DependencyError(
      'LAB_TOOLS_MISSING',
      `the lab needs ${missing.join(', ')}, and setup-system.sh did not install them`,
      {
        hint: `Run \`sudo bash ${script}\` and read its output: ${result.stderr.trim().slice(-400)}`,
      },
    );
  }
}
