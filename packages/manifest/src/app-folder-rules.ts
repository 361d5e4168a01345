import { stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { DATABASE_IDENTIFIER_RULE, isDatabaseIdentifier, type AppManifest } from '@deploykit/core';
import type { Issue } from './issue.js';
import type { YamlSource } from './yaml-source.js';

/** Everything a cross-field rule may look at: the valid manifest, its source and the folder on disk. */
export interface RuleContext {
  readonly dir: string;
  readonly manifest: AppManifest;
  readonly source: YamlSource;
  readonly options: ValidateOptions;
}

/** Options of validateAppFolder. */
export interface ValidateOptions {
  /** Report missing secret files as warnings: for a first `deploy install` whose bin/install generates them. */
  readonly allowMissingSecrets?: boolean;
}

/** An issue a rule found, with whether it blocks (error) or only informs (warning). */
export interface RuleFinding {
  readonly severity: 'error' | 'warning';
  readonly issue: Issue;
}

/** A named cross-field rule; runs only after the schema passed. */
export type AppFolderRule = (context: RuleContext) => Promise<RuleFinding[]>;

/** bin/ scripts every app must have, and those it may have. */
export const REQUIRED_BIN_SCRIPTS = ['install', 'start', 'stop', 'backup', 'restore'] as const;
export const OPTIONAL_BIN_SCRIPTS = ['health', 'migrate', 'update', 'maintenance'] as const;

function findingAt(
  context: RuleContext,
  severity: RuleFinding['severity'],
  rule: string,
  segments: readonly (string | number)[],
  message: string,
): RuleFinding {
  const parts = segments.map(String);
  return {
    severity,
    issue: { file: context.source.file, ...context.source.locateValue(parts), path: parts.join('/'), message, rule },
  };
}

function findingOnDisk(severity: RuleFinding['severity'], rule: string, file: string, message: string): RuleFinding {
  return { severity, issue: { file, line: 0, column: 0, path: '', message, rule } };
}

/** Relative paths the manifest names, with where each is declared and whether it is a secret. */
interface DeclaredPath {
  readonly segments: readonly (string | number)[];
  readonly path: string;
  readonly kind: 'volume' | 'config' | 'secret';
}

function listDeclaredPaths(manifest: AppManifest): DeclaredPath[] {
  const paths: DeclaredPath[] = [];
  const push = (declared: DeclaredPath): void => {
    // A passphrase or credentials file is usually listed in secrets too: report each file once.
    if (!paths.some((other) => other.kind === declared.kind && other.path === declared.path)) paths.push(declared);
  };
  for (const [index, volume] of manifest.volumes.entries())
    push({ segments: ['volumes', index, 'path'], path: volume.path, kind: 'volume' });
  for (const [index, path] of manifest.config.entries()) push({ segments: ['config', index], path, kind: 'config' });
  for (const [index, path] of manifest.secrets.entries()) push({ segments: ['secrets', index], path, kind: 'secret' });
  if (manifest.borg?.passphrase_file !== undefined) {
    push({ segments: ['borg', 'passphrase_file'], path: manifest.borg.passphrase_file, kind: 'secret' });
  }
  manifest.health?.checks.forEach((check, index) => {
    if (check.type === 'login')
      push({ segments: ['health', 'checks', index, 'credentials_file'], path: check.credentials_file, kind: 'secret' });
  });
  return paths;
}

function escapesFolder(path: string): boolean {
  return isAbsolute(path) || path.split(/[\\/]/).includes('..');
}

async function statOrUndefined(path: string): Promise<Awaited<ReturnType<typeof stat>> | undefined> {
  try {
    return await stat(path);
  } catch {
    return undefined;
  }
}

/** `check-volume-unknown`: an uploads check names a volume that volumes does not declare. */
export const checkVolumeUnknown: AppFolderRule = async (context) => {
  const known = context.manifest.volumes.map((volume) => volume.name);
  const findings: RuleFinding[] = [];
  context.manifest.health?.checks.forEach((check, index) => {
    if (check.type !== 'uploads' || known.includes(check.volume)) return;
    const list = known.length === 0 ? 'no volumes are declared' : `known: ${known.join(', ')}`;
    findings.push(
      findingAt(
        context,
        'error',
        'check-volume-unknown',
        ['health', 'checks', index, 'volume'],
        `volume "${check.volume}" is not declared in volumes (${list})`,
      ),
    );
  });
  return findings;
};

/** `volume-path-escapes`: a volume, config or secret path is absolute or climbs out with `..`. */
export const volumePathEscapes: AppFolderRule = async (context) =>
  listDeclaredPaths(context.manifest)
    .filter((declared) => escapesFolder(declared.path))
    .map((declared) =>
      findingAt(
        context,
        'error',
        'volume-path-escapes',
        declared.segments,
        `${declared.kind} path "${declared.path}" leaves the app folder: use a path relative to the app folder without ".."`,
      ),
    );

/** `secret-missing`, `secret-world-readable` (error) and `secret-group-readable` (warning). */
export const checkSecretFiles: AppFolderRule = async (context) => {
  const findings: RuleFinding[] = [];
  for (const declared of listDeclaredPaths(context.manifest)) {
    if (declared.kind !== 'secret' || escapesFolder(declared.path)) continue;
    const info = await statOrUndefined(join(context.dir, declared.path));
    if (info === undefined || !info.isFile()) {
      const what = info === undefined ? 'does not exist' : 'is not a regular file';
      const severity = info === undefined && context.options.allowMissingSecrets === true ? 'warning' : 'error';
      findings.push(
        findingAt(
          context,
          severity,
          'secret-missing',
          declared.segments,
          `secret file ${declared.path} ${what} in the app folder: create it (mode 600)`,
        ),
      );
      continue;
    }
    const mode = Number(info.mode) & 0o777;
    const octal = mode.toString(8).padStart(4, '0');
    if ((mode & 0o007) !== 0) {
      findings.push(
        findingAt(
          context,
          'error',
          'secret-world-readable',
          declared.segments,
          `secret file ${declared.path} is accessible by other users (mode ${octal}): run chmod 600 ${declared.path}`,
        ),
      );
    } else if ((mode & 0o070) !== 0) {
      findings.push(
        findingAt(
          context,
          'warning',
          'secret-group-readable',
          declared.segments,
          `secret file ${declared.path} is accessible by its group (mode ${octal}): run chmod 600 ${declared.path} unless the group needs it`,
        ),
      );
    }
  }
  return findings;
};

/** `config-missing`: a listed config file is not in the app folder. */
export const checkConfigFiles: AppFolderRule = async (context) => {
  const findings: RuleFinding[] = [];
  for (const declared of listDeclaredPaths(context.manifest)) {
    if (declared.kind !== 'config' || escapesFolder(declared.path)) continue;
    const info = await statOrUndefined(join(context.dir, declared.path));
    if (info === undefined || !info.isFile()) {
      const what = info === undefined ? 'does not exist' : 'is not a regular file';
      findings.push(
        findingAt(
          context,
          'error',
          'config-missing',
          declared.segments,
          `config file ${declared.path} ${what} in the app folder: create it or remove it from config`,
        ),
      );
    }
  }
  return findings;
};

/** `bin-missing` and `bin-not-executable` for the required and the present optional bin/ scripts. */
export const checkBinScripts: AppFolderRule = async (context) => {
  const findings: RuleFinding[] = [];
  for (const phase of [...REQUIRED_BIN_SCRIPTS, ...OPTIONAL_BIN_SCRIPTS]) {
    const relativePath = `bin/${phase}`;
    const absolutePath = join(context.dir, relativePath);
    const info = await statOrUndefined(absolutePath);
    const required = (REQUIRED_BIN_SCRIPTS as readonly string[]).includes(phase);
    if (info === undefined) {
      if (required)
        findings.push(
          findingOnDisk(
            'error',
            'bin-missing',
            absolutePath,
            `${relativePath} is missing: every app needs bin/${REQUIRED_BIN_SCRIPTS.join(', bin/')}`,
          ),
        );
      continue;
    }
    if (!info.isFile()) {
      findings.push(
        findingOnDisk(
          'error',
          'bin-missing',
          absolutePath,
          `${relativePath} is not a regular file: replace it with an executable script`,
        ),
      );
      continue;
    }
    // The owner's execute bit: scripts run as the app folder's owner (root runs anything with any x bit, so access() would lie).
    if ((Number(info.mode) & 0o100) === 0) {
      findings.push(
        findingOnDisk(
          'error',
          'bin-not-executable',
          absolutePath,
          `${relativePath} is not executable: run chmod +x ${relativePath}`,
        ),
      );
    }
  }
  return findings;
};

/** `database-name-required`: a database kind other than none needs a name. */
export const databaseNameRequired: AppFolderRule = async (context) => {
  const database = context.manifest.database;
  if (database.kind === 'none' || (database.name !== undefined && database.name !== '')) return [];
  return [
    findingAt(
      context,
      'error',
      'database-name-required',
      ['database'],
      `database kind "${database.kind}" needs a name: add database.name`,
    ),
  ];
};

/**
 * `database-identifier-invalid`: the database name and roles must be names migrate can put into SQL
 * and dump commands (the same isDatabaseIdentifier that migrate's checkIdentifier applies).
 */
export const databaseIdentifiers: AppFolderRule = async (context) => {
  const database = context.manifest.database;
  if (database.kind === 'none') return [];
  const findings: RuleFinding[] = [];
  const check = (segments: readonly (string | number)[], label: string, name: string | undefined): void => {
    if (name === undefined || name === '' || isDatabaseIdentifier(name)) return;
    findings.push(
      findingAt(
        context,
        'error',
        'database-identifier-invalid',
        segments,
        `${label} "${name}" is not a plain identifier: it must ${DATABASE_IDENTIFIER_RULE}`,
      ),
    );
  };
  check(['database', 'name'], 'database name', database.name);
  for (const [index, role] of (database.roles ?? []).entries()) check(['database', 'roles', index], 'role name', role);
  return findings;
};

/** `duplicate-volume-name`, `duplicate-check-name` and `duplicate-special-file`: names and paths must be unique. */
export const duplicateNames: AppFolderRule = async (context) => {
  const findings: RuleFinding[] = [];
  const report = (rule: string, label: string, names: readonly string[], prefix: readonly string[]): void => {
    const firstIndex = new Map<string, number>();
    names.forEach((name, index) => {
      const first = firstIndex.get(name);
      if (first === undefined) firstIndex.set(name, index);
      else
        findings.push(
          findingAt(
            context,
            'error',
            rule,
            [...prefix, index, 'name'],
            `${label} name "${name}" is already used by ${prefix.join('/')}/${first}: give each ${label} its own name`,
          ),
        );
    });
  };
  report(
    'duplicate-volume-name',
    'volume',
    context.manifest.volumes.map((volume) => volume.name),
    ['volumes'],
  );
  context.manifest.volumes.forEach((volume, index) => {
    const seen = new Map<string, number>();
    (volume.special_files ?? []).forEach((file, fileIndex) => {
      const first = seen.get(file.path);
      if (first === undefined) seen.set(file.path, fileIndex);
      else
        findings.push(
          findingAt(
            context,
            'error',
            'duplicate-special-file',
            ['volumes', index, 'special_files', fileIndex, 'path'],
            `special file "${file.path}" is already declared by volumes/${index}/special_files/${first}: declare each path once, with its one type`,
          ),
        );
    });
  });
  report('duplicate-check-name', 'check', context.manifest.health?.checks.map((check) => check.name) ?? [], [
    'health',
    'checks',
  ]);
  return findings;
};

/** Every per-folder rule, in the order their findings are reported. */
export const APP_FOLDER_RULES: readonly AppFolderRule[] = [
  checkVolumeUnknown,
  volumePathEscapes,
  duplicateNames,
  databaseNameRequired,
  databaseIdentifiers,
  checkConfigFiles,
  checkSecretFiles,
  checkBinScripts,
];
