import { randomBytes } from 'node:crypto';
import { chmod, cp, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { ConflictError, EXIT_CODES, UsageError } from '@deploykit/core';
import { validateAppFolder, formatIssue } from '@deploykit/manifest';
import { findAppsTemplateDir, RELEASE_GITIGNORE } from '../../install-paths.js';
import type { DeployCommand } from '../deploy-command.js';

/** The sample app folder shipped with deploykit. */
export const TEMPLATE_DIR = findAppsTemplateDir();

/** Fills `CHANGE_ME` placeholders of a secrets example with fresh random values. */
export function fillSecretTemplate(text: string): string {
  return text.replace(/CHANGE_ME/g, () => randomBytes(18).toString('base64url'));
}

/** `deploy init <name>`: copy the sample app (or another folder) into the apps root, ready to edit. */
export const initCommand: DeployCommand = {
  command: 'init <name>',
  describe: 'Create an app folder from the sample app (or --from DIR)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'New app name (lowercase, digits, dashes)', demandOption: true })
      .option('from', { type: 'string', describe: 'Folder to copy (default: the shipped sample app)' }),
  examples: [
    ['deploy init shop', 'Copy the sample app to /srv/apps/shop, then edit its app.yaml'],
    ['deploy init notes --host a', 'Create it on host a'],
  ],
  async run(context, args) {
    const name = String(args.name);
    if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) {
      throw new UsageError('APP_NAME_INVALID', `"${name}" is not a valid app name`, {
        hint: 'Use lowercase letters, digits and dashes, starting with a letter.',
      });
    }
    const from = resolve(typeof args.from === 'string' ? args.from : TEMPLATE_DIR);
    const target = join(context.hostContext.appsRoot, name);
    if (await stat(target).catch(() => undefined)) {
      throw new ConflictError('APP_EXISTS', `${target} already exists`, {
        hint: 'Choose another name, or remove that folder first.',
      });
    }
    // Relative to the source: an installed release's template itself lies under node_modules/deploykit.
    await cp(from, target, { recursive: true, filter: (src) => !/(^|\/)node_modules(\/|$)/.test(relative(from, src)) });
    // npm pack never ships a .gitignore: the release carries the template's as dot-gitignore (scripts/release.mjs).
    await rename(join(target, RELEASE_GITIGNORE), join(target, '.gitignore')).catch(() => undefined);
    const manifestPath = join(target, 'app.yaml');
    const manifestText = await readFile(manifestPath, 'utf8');
    await writeFile(manifestPath, manifestText.replace(/^name:.*$/m, `name: ${name}`));
    const loaded = await validateAppFolder(target, { allowMissingSecrets: true });
    const generated: string[] = [];
    for (const secretFile of loaded.app?.manifest.secrets ?? []) {
      const path = join(target, secretFile);
      if (await stat(path).catch(() => undefined)) {
        await chmod(path, 0o600);
        continue;
      }
      const example = await readFile(`${path}.example`, 'utf8').catch(() => undefined);
      if (example === undefined) continue;
      await writeFile(path, fillSecretTemplate(example), { mode: 0o600 });
      await chmod(path, 0o600);
      generated.push(secretFile);
    }
    // Secrets the app's bin/install creates on first run may still be missing: that is not an error yet.
    const result = await validateAppFolder(target, { allowMissingSecrets: true });
    const lines = [`created ${target} from ${from}`];
    if (generated.length > 0) lines.push(`generated secrets (mode 0600): ${generated.join(', ')}`);
    for (const issue of result.errors) lines.push(`  error: ${formatIssue(issue)}`);
    for (const issue of result.warnings) lines.push(`  note: ${formatIssue(issue)}`);
    lines.push(
      result.errors.length === 0
        ? `next: edit ${manifestPath}, then \`deploy install ${name}\``
        : `next: fix the errors above, then \`deploy validate ${name}\``,
    );
    return {
      exitCode: result.errors.length === 0 ? EXIT_CODES.ok : EXIT_CODES.config,
      json: { app: name, dir: target, from, generatedSecrets: generated, errors: result.errors },
      text: lines.join('\n'),
    };
  },
};
