import { ConfigError, type AppFolder } from '@deploykit/core';
import { discoverApps, formatIssue, type DiscoveryResult } from '@deploykit/manifest';

/** Finds one app by name under the apps root; a bad or unknown name says what exists. */
export async function loadApp(
  appsRoot: string,
  name: string,
  options: { allowMissingSecrets?: boolean } = {},
): Promise<AppFolder> {
  const found = await discoverApps(appsRoot, options);
  return pickApp(found, name);
}

/** Picks an app out of a discovery result (see loadApp). */
export function pickApp(found: DiscoveryResult, name: string): AppFolder {
  const app = found.apps.find((candidate) => candidate.name === name);
  if (app) return app;
  const broken = found.entries.find((entry) => entry.folder === name || entry.app?.name === name);
  if (broken && broken.errors.length > 0) {
    throw new ConfigError(
      'APP_INVALID',
      `app "${name}" has ${broken.errors.length} error(s):\n${broken.errors.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
      {
        hint: `Fix them, then check with \`deploy validate ${name}\`.`,
      },
    );
  }
  const known = found.apps.map((candidate) => candidate.name);
  throw new ConfigError('APP_UNKNOWN', `no app named "${name}" under ${found.root}`, {
    hint:
      known.length > 0
        ? `Known apps: ${known.join(', ')}.`
        : `Create one with \`deploy init ${name}\` (copies the sample app), or pass --apps-root.`,
  });
}
