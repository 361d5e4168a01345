import { readFile } from 'node:fs/promises';
import type { TransportName } from '@deploykit/core';
import type { Issue } from './issue.js';
import type { SchemaValidator } from './schema-issues.js';

/** How to reach one named host (`--to <name>`). */
export interface HostConfig {
  /** SSH destination: an ssh_config alias or user@host. */
  readonly ssh: string;
  /** ssh_config file for this host (ssh -F). */
  readonly ssh_config?: string;
  readonly apps_root?: string;
  readonly state_dir?: string;
  /** Address apps are reached at there; fills {host_address}. */
  readonly address?: string;
  /** Environment of deploy runs for that host under the local transport (its database connection). */
  readonly env?: Readonly<Record<string, string>>;
}

/** The global config after validation and defaults (config.schema.json describes it). */
export interface GlobalConfig {
  readonly apps_root?: string;
  readonly state_dir?: string;
  readonly defaults: {
    readonly transport?: TransportName;
    readonly stall_seconds: number;
    readonly retries: number;
    readonly keep_migration_archives: number;
  };
  readonly hosts: Readonly<Record<string, HostConfig>>;
}

/** What loading the global config gives; on errors `config` is the empty (defaulted) config. */
export interface GlobalConfigResult {
  readonly config: GlobalConfig;
  /** Path that was read; undefined when no config file is in use. */
  readonly path?: string;
  readonly errors: Issue[];
  readonly warnings: Issue[];
}

let validator: SchemaValidator | undefined;

/** The config every run starts from when no file sets anything. */
export function createEmptyGlobalConfig(): GlobalConfig {
  return { defaults: { stall_seconds: 60, retries: 2, keep_migration_archives: 3 }, hosts: {} };
}

/** Loads the global config from `path`, else from DEPLOY_CONFIG, else returns the empty config; never throws for bad content. */
export async function loadGlobalConfig(path?: string): Promise<GlobalConfigResult> {
  const fromEnvironment = path === undefined;
  const file = path ?? process.env.DEPLOY_CONFIG;
  if (file === undefined || file === '') return { config: createEmptyGlobalConfig(), errors: [], warnings: [] };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'does not exist'
        : `cannot be read (${(error as Error).message})`;
    const hint = fromEnvironment ? 'create it or unset DEPLOY_CONFIG' : 'create it or pass another file';
    return {
      config: createEmptyGlobalConfig(),
      path: file,
      errors: [
        { file, line: 0, column: 0, path: '', message: `global config ${reason}: ${hint}`, rule: 'config-unreadable' },
      ],
      warnings: [],
    };
  }
  // YAML and the schema validator load only when there is a file: most runs have none, and they cost
  // about a third of `deploy list`'s start-up.
  const [{ parseYamlSource }, { compileSchemaValidator }, { configSchema }] = await Promise.all([
    import('./yaml-source.js'),
    import('./schema-issues.js'),
    import('./schema.js'),
  ]);
  const source = parseYamlSource(file, text);
  if (source.errors.length > 0)
    return { config: createEmptyGlobalConfig(), path: file, errors: source.errors, warnings: source.warnings };
  // An empty file means "nothing set", not "wrong type".
  const data = source.data ?? {};
  validator ??= compileSchemaValidator(configSchema);
  const errors = validator(data, source);
  if (errors.length > 0) return { config: createEmptyGlobalConfig(), path: file, errors, warnings: source.warnings };
  return { config: data as GlobalConfig, path: file, errors: [], warnings: source.warnings };
}
