import { readFileSync } from 'node:fs';

/**
 * The version of this deploy: the `version` field of the deploy package's package.json
 * (packages/deploy/package.json, the package whose bin is `deploy`), the one source of truth. It is
 * what `deploy --version` prints, what `--json` reports and run records carry as `deployVersion`,
 * and what a migration's header sends to the target, which refuses another major version.
 */
export const DEPLOY_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
