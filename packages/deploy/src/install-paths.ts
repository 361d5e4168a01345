import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// This module sits one level below the package root in both layouts deploy runs from: the repo
// (packages/deploy/dist/install-paths.js) and an installed release (<package>/dist/<chunk>.js, the
// esbuild bundle of scripts/release.mjs), so `../` is the package root in both.

/** The `deploy` entry script of this very deploy (bin/deploy.js of its package). */
export const DEPLOY_BIN_PATH: string = fileURLToPath(new URL('../bin/deploy.js', import.meta.url));

/** The argv that runs this very `deploy` (node + its bin script), for child runs on this host. */
export function localDeployCommand(): string[] {
  return [process.execPath, DEPLOY_BIN_PATH];
}

/**
 * The sample app folder shipped with deploykit: `<package>/apps-template` in a release, the repo's
 * `apps-template` (three levels up from packages/deploy/dist) in a checkout.
 */
export function findAppsTemplateDir(): string {
  const inRelease = fileURLToPath(new URL('../apps-template', import.meta.url));
  return existsSync(inRelease) ? inRelease : fileURLToPath(new URL('../../../apps-template', import.meta.url));
}

/** The name the release gives the sample app's .gitignore (npm pack leaves every .gitignore out); `deploy init` renames it back. */
export const RELEASE_GITIGNORE = 'dot-gitignore';

/** Where `npm run release` puts the release of `version` in a checkout (dist-release/ at the repo root). */
export function defaultReleasePath(version: string): string {
  return fileURLToPath(new URL(`../../../dist-release/deploykit-${version}.tgz`, import.meta.url));
}
