import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigError, type AppFolder } from '@deploykit/core';
import { sortIssues, type Issue } from './issue.js';
import { MANIFEST_FILE } from './manifest-file.js';
import type { ValidateOptions } from './app-folder-rules.js';

/** One folder under the apps root that holds an app.yaml, valid or not. */
export interface DiscoveredApp {
  /** Absolute path of the folder. */
  readonly dir: string;
  /** The folder's own name. */
  readonly folder: string;
  /** The app, when its folder has no errors and its name is not shared with another folder. */
  readonly app?: AppFolder;
  readonly warnings: Issue[];
  readonly errors: Issue[];
}

/** Every app folder found under an apps root, with each one's problems. */
export interface DiscoveryResult {
  /** Absolute apps root that was searched. */
  readonly root: string;
  /** Every folder with an app.yaml, sorted by folder name. */
  readonly entries: DiscoveredApp[];
  /** The usable apps (entries without errors), sorted by name. */
  readonly apps: AppFolder[];
  /** All entries' errors, in one list. */
  readonly errors: Issue[];
  /** All entries' warnings, in one list. */
  readonly warnings: Issue[];
}

// Leftovers of swaps and migrations (`wiki.staging-1`, `wiki.old`) sit next to real app folders; never treat them as apps.
const IGNORED_FOLDER = /^\.|\.staging|\.old/;

/** Finds, loads and validates every direct subfolder of `appsRoot` holding an app.yaml; throws ConfigError only when the root itself is unusable. */
export async function discoverApps(appsRoot: string, options: ValidateOptions = {}): Promise<DiscoveryResult> {
  const root = resolve(appsRoot);
  const rootInfo = await stat(root).catch(() => undefined);
  if (rootInfo === undefined) {
    throw new ConfigError('APPS_ROOT_MISSING', `apps root ${root} does not exist`, {
      hint: `Create it (mkdir -p ${root}) or point deploy at the right folder with --apps-root, DEPLOY_APPS_ROOT or apps_root in the global config.`,
      details: { appsRoot: root },
    });
  }
  if (!rootInfo.isDirectory()) {
    throw new ConfigError('APPS_ROOT_NOT_DIRECTORY', `apps root ${root} is not a folder`, {
      hint: 'Point --apps-root, DEPLOY_APPS_ROOT or apps_root in the global config at the folder that holds the app folders.',
      details: { appsRoot: root },
    });
  }
  const names = (await readdir(root)).filter((name) => !IGNORED_FOLDER.test(name)).sort();
  const candidates: string[] = [];
  for (const name of names) {
    // stat, not the dirent type: app folders may be symlinks to another disk.
    const info = await stat(join(root, name)).catch(() => undefined);
    if (!info?.isDirectory()) continue;
    const manifest = await stat(join(root, name, MANIFEST_FILE)).catch(() => undefined);
    if (manifest !== undefined) candidates.push(name);
  }
  // The validator (YAML, JSON Schema) loads only when there is an app to validate: `deploy list` on an
  // empty apps root starts without it.
  const { validateAppFolder } =
    candidates.length > 0 ? await import('./validate-app-folder.js') : { validateAppFolder: undefined };
  // One app's failure must not hide the others: each folder is validated on its own and every error kept.
  const validated = await Promise.all(
    candidates.map(async (folder) => {
      const dir = join(root, folder);
      const result = await validateAppFolder!(dir, options).catch(
        (error: unknown): Awaited<ReturnType<NonNullable<typeof validateAppFolder>>> => ({
          warnings: [],
          errors: [
            {
              file: join(dir, MANIFEST_FILE),
              line: 0,
              column: 0,
              path: '',
              message: `cannot be validated: ${(error as Error).message}`,
              rule: 'internal',
            },
          ],
        }),
      );
      return { folder, dir, result };
    }),
  );
  const entries = await markDuplicateNames(validated.map(({ folder, dir, result }) => ({ folder, dir, ...result })));
  const apps = entries
    .flatMap((entry) => (entry.app === undefined ? [] : [entry.app]))
    .sort((a, b) => a.name.localeCompare(b.name));
  return {
    root,
    entries,
    apps,
    errors: sortIssues(entries.flatMap((entry) => entry.errors)),
    warnings: sortIssues(entries.flatMap((entry) => entry.warnings)),
  };
}

/** `duplicate-app-name`: two folders whose manifests carry the same name; neither is usable until one is renamed. */
async function markDuplicateNames(entries: readonly DiscoveredApp[]): Promise<DiscoveredApp[]> {
  const byName = new Map<string, DiscoveredApp[]>();
  for (const entry of entries) {
    if (entry.app === undefined) continue;
    byName.set(entry.app.name, [...(byName.get(entry.app.name) ?? []), entry]);
  }
  const marked: DiscoveredApp[] = [];
  for (const entry of entries) {
    const same = entry.app === undefined ? [] : (byName.get(entry.app.name) ?? []);
    if (entry.app === undefined || same.length < 2) {
      marked.push(entry);
      continue;
    }
    const others = same.filter((other) => other !== entry).map((other) => other.folder);
    // Re-read only for the position of `name:`; the app was just validated, so this parses.
    const { parseYamlSource } = await import('./yaml-source.js');
    const source = parseYamlSource(entry.app.manifestPath, await readFile(entry.app.manifestPath, 'utf8'));
    const issue: Issue = {
      file: entry.app.manifestPath,
      ...source.locateValue(['name']),
      path: 'name',
      message: `app name "${entry.app.name}" is also used by ${others.join(', ')}: rename one of them (names must be unique under an apps root)`,
      rule: 'duplicate-app-name',
    };
    marked.push({ dir: entry.dir, folder: entry.folder, warnings: entry.warnings, errors: [...entry.errors, issue] });
  }
  return marked;
}
