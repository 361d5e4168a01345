import { readFileSync } from 'node:fs';

/**
 * The version of this deploy: the `version` field of the deploy package's package.json
 * (packages/deploy/package.json, the package whose bin is `deploy`), the one source of truth. It is
 * what `deploy --version` prints, what `--json` reports and run records carry as `deployVersion`,
 * and what a migration's header sends to the target, which refuses another major.minor (isCompatibleDeployVersion).
 */
export const DEPLOY_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/**
 * Whether two deploys can take part in one migration (source and target): the same major.minor
 * (decision 0009). The source and the target-side run exchange JSON whose shape is versioned by
 * the release, not separately, so only patch releases promise to keep it.
 */
export function isCompatibleDeployVersion(ours: string, theirs: string): boolean {
  const majorMinor = (version: string): string => version.split('.').slice(0, 2).join('.');
  return majorMinor(ours) === majorMinor(theirs);
}
