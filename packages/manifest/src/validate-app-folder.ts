import { resolve, join, basename } from 'node:path';
import type { AppFolder } from '@deploykit/core';
import { sortIssues, type Issue } from './issue.js';
import { loadManifestWithSource } from './load-manifest.js';
import { APP_FOLDER_RULES, type ValidateOptions } from './app-folder-rules.js';
import { MANIFEST_FILE } from './manifest-file.js';

/** Name of the manifest file inside every app folder. */
export { MANIFEST_FILE } from './manifest-file.js';

/** What validating an app folder gives: the app when it has no errors, and every problem found. */
export interface ValidationResult {
  readonly app?: AppFolder;
  readonly warnings: Issue[];
  readonly errors: Issue[];
}

/** Loads `dir/app.yaml`, then runs the cross-field rules against the folder on disk; never throws for bad content. */
export async function validateAppFolder(dir: string, options: ValidateOptions = {}): Promise<ValidationResult> {
  const absoluteDir = resolve(dir);
  const manifestPath = join(absoluteDir, MANIFEST_FILE);
  const loaded = await loadManifestWithSource(manifestPath);
  if (loaded.manifest === undefined || loaded.source === undefined)
    return { warnings: loaded.warnings, errors: loaded.errors };
  const context = { dir: absoluteDir, manifest: loaded.manifest, source: loaded.source, options };
  const findings = (await Promise.all(APP_FOLDER_RULES.map((rule) => rule(context)))).flat();
  const errors = sortIssues(findings.filter((finding) => finding.severity === 'error').map((finding) => finding.issue));
  const warnings = [
    ...loaded.warnings,
    ...findings.filter((finding) => finding.severity === 'warning').map((finding) => finding.issue),
  ];
  if (loaded.manifest.name !== basename(absoluteDir)) {
    // Not an error: folders may be renamed, but `deploy <verb> <name>` uses the manifest name, which surprises people.
    warnings.push({
      file: manifestPath,
      ...loaded.source.locateValue(['name']),
      path: 'name',
      message: `app name "${loaded.manifest.name}" differs from its folder name "${basename(absoluteDir)}": commands use the app name`,
      rule: 'folder-name-mismatch',
    });
  }
  const app: AppFolder = { name: loaded.manifest.name, dir: absoluteDir, manifestPath, manifest: loaded.manifest };
  return errors.length === 0
    ? { app, warnings: sortIssues(warnings), errors }
    : { warnings: sortIssues(warnings), errors };
}
