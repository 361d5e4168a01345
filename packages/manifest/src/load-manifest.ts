import { readFile } from 'node:fs/promises';
import type { AppManifest } from '@deploykit/core';
import type { Issue } from './issue.js';
import { appSchema } from './schema.js';
import { compileSchemaValidator, type SchemaValidator } from './schema-issues.js';
import { parseYamlSource, type YamlSource } from './yaml-source.js';

/** What loading an app.yaml gives: the typed manifest when it is valid, and every problem found. */
export interface ManifestResult {
  readonly manifest?: AppManifest;
  readonly warnings: Issue[];
  readonly errors: Issue[];
}

/** A loaded manifest together with its YAML source, so cross-field rules can point at lines. */
export interface LoadedManifest extends ManifestResult {
  readonly source?: YamlSource;
}

let validator: SchemaValidator | undefined;

/** Reads and validates an app.yaml at `path`; never throws for bad content, returns it as errors. */
export async function loadManifest(path: string): Promise<ManifestResult> {
  const { manifest, warnings, errors } = await loadManifestWithSource(path);
  return manifest === undefined ? { warnings, errors } : { manifest, warnings, errors };
}

/** Like loadManifest, and also returns the YAML source for locating later issues. */
export async function loadManifestWithSource(path: string): Promise<LoadedManifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'does not exist'
        : `cannot be read (${(error as Error).message})`;
    return {
      warnings: [],
      errors: [
        { file: path, line: 0, column: 0, path: '', message: `manifest ${reason}`, rule: 'manifest-unreadable' },
      ],
    };
  }
  return validateManifestText(path, text);
}

/** Validates app.yaml text as if read from `file`; the pure core of loadManifest. */
export function validateManifestText(file: string, text: string): LoadedManifest {
  const source = parseYamlSource(file, text);
  if (source.errors.length > 0) return { source, warnings: source.warnings, errors: source.errors };
  validator ??= compileSchemaValidator(appSchema);
  // An empty file parses to null; validate an object-or-not as is so the schema reports "must be object".
  const data = source.data ?? null;
  const errors = validator(data, source);
  if (errors.length > 0) return { source, warnings: source.warnings, errors };
  return { source, manifest: data as AppManifest, warnings: source.warnings, errors: [] };
}
