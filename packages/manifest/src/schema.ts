import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The schema files live in packages/manifest/schema and are read relative to this module, which
// works the same from src/ (tests via tsx) and from dist/ (the shipped build): both sit one level deep.
/** Absolute path of app.schema.json, the single source of the app.yaml contract (point editors at it). */
export const schemaPath: string = fileURLToPath(new URL('../schema/app.schema.json', import.meta.url));

/** Absolute path of config.schema.json, the schema of the global config file. */
export const configSchemaPath: string = fileURLToPath(new URL('../schema/config.schema.json', import.meta.url));

/** JSON Schema node, loosely typed: enough to walk it for messages and docs. */
export interface SchemaNode {
  readonly $ref?: string;
  readonly type?: string | readonly string[];
  readonly description?: string;
  readonly examples?: readonly unknown[];
  readonly default?: unknown;
  readonly enum?: readonly unknown[];
  readonly const?: unknown;
  readonly pattern?: string;
  /** Our extension: the sentence shown when `pattern` fails. */
  readonly 'x-pattern-message'?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly minItems?: number;
  readonly required?: readonly string[];
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly additionalProperties?: boolean | SchemaNode;
  readonly propertyNames?: SchemaNode;
  readonly items?: SchemaNode;
  readonly allOf?: readonly SchemaNode[];
  readonly if?: SchemaNode;
  readonly then?: SchemaNode;
  readonly definitions?: Readonly<Record<string, SchemaNode>>;
  readonly title?: string;
}

/** The parsed app.yaml JSON Schema (draft-07). */
export const appSchema: SchemaNode = JSON.parse(readFileSync(schemaPath, 'utf8')) as SchemaNode;

/** The parsed global config JSON Schema (draft-07). */
export const configSchema: SchemaNode = JSON.parse(readFileSync(configSchemaPath, 'utf8')) as SchemaNode;

/** Follows a local `#/definitions/x` reference inside `root`; returns the node itself when it is no reference. */
export function resolveSchemaRef(root: SchemaNode, node: SchemaNode): SchemaNode {
  let current = node;
  // A short chain at most; the guard only stops a malformed schema from looping.
  for (let depth = 0; current.$ref !== undefined && depth < 10; depth += 1) {
    const name = current.$ref.replace(/^#\/definitions\//, '');
    const target = root.definitions?.[name];
    if (target === undefined) return current;
    current = target;
  }
  return current;
}
