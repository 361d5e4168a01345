import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { sortIssues, type Issue } from './issue.js';
import { joinPath, splitPointer, type YamlSource } from './yaml-source.js';

/** Validates plain data against a JSON Schema, applying its defaults in place. */
export type SchemaValidator = (data: unknown, source: YamlSource) => Issue[];

/** Compiles `schema` into a validator that returns every violation as an Issue located in the YAML source. */
export function compileSchemaValidator(schema: object): SchemaValidator {
  // verbose gives parentSchema (for the list of known keys); logger off because library code never prints.
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    verbose: true,
    strict: true,
    strictTypes: false,
    strictRequired: false,
    logger: false,
  });
  // Our one extension keyword: a human sentence for a pattern, since a regular expression is no message.
  ajv.addVocabulary(['x-pattern-message']);
  const validate: ValidateFunction = ajv.compile(schema);
  return (data, source) => {
    if (validate(data)) return [];
    return sortIssues(dedupeIssues((validate.errors ?? []).flatMap((error) => convertAjvError(error, source))));
  };
}

function convertAjvError(error: ErrorObject, source: YamlSource): Issue[] {
  const segments = splitPointer(error.instancePath);
  const base = { file: source.file, rule: 'schema' };
  switch (error.keyword) {
    // "must match then schema" and "property name must be valid" only repeat the specific errors ajv also reports.
    case 'if':
    case 'propertyNames':
      return [];
    case 'additionalProperties': {
      const key = String((error.params as { additionalProperty: string }).additionalProperty);
      const known = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return [
        {
          ...base,
          ...source.locateKey([...segments, key]),
          path: joinPath(segments),
          message: describeUnknownKey(key, known),
        },
      ];
    }
    case 'required':
      return [
        {
          ...base,
          ...source.locateValue(segments),
          path: joinPath(segments),
          message: error.message ?? 'is incomplete',
        },
      ];
    case 'enum': {
      const allowed = (error.params as { allowedValues: unknown[] }).allowedValues.map(String).join(', ');
      return [
        {
          ...base,
          ...source.locateValue(segments),
          path: joinPath(segments),
          message: `must be one of: ${allowed} (got ${JSON.stringify(error.data)})`,
        },
      ];
    }
    case 'pattern': {
      const sentence = (error.parentSchema as { 'x-pattern-message'?: string } | undefined)?.['x-pattern-message'];
      if (error.propertyName !== undefined) {
        // A propertyNames violation: the offending thing is a key, so point at the key.
        return [
          {
            ...base,
            ...source.locateKey([...segments, error.propertyName]),
            path: joinPath(segments),
            message: `key "${error.propertyName}" ${sentence ?? error.message ?? 'is not allowed'}`,
          },
        ];
      }
      return [
        {
          ...base,
          ...source.locateValue(segments),
          path: joinPath(segments),
          message: `${sentence ?? error.message ?? 'is invalid'} (got ${JSON.stringify(error.data)})`,
        },
      ];
    }
    case 'type':
      if (segments.length === 0) {
        const got = error.data === null ? 'nothing' : Array.isArray(error.data) ? 'a list' : typeof error.data;
        return [
          {
            ...base,
            ...source.locateValue(segments),
            path: '',
            message: `the document must be a mapping of keys (got ${got})`,
          },
        ];
      }
      return [
        {
          ...base,
          ...source.locateValue(segments),
          path: joinPath(segments),
          message: error.message ?? 'has the wrong type',
        },
      ];
    default:
      return [
        {
          ...base,
          ...source.locateValue(segments),
          path: joinPath(segments),
          message: error.message ?? `fails ${error.keyword}`,
        },
      ];
  }
}

/** `unknown key "volumez" (known: a, b); did you mean "volumes"?` */
function describeUnknownKey(key: string, known: readonly string[]): string {
  const closest = findClosest(key, known);
  const suggestion = closest === undefined ? '' : `; did you mean "${closest}"?`;
  return `unknown key "${key}" (known: ${known.join(', ')})${suggestion}`;
}

function findClosest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = measureEditDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // Only suggest near misses (typos), not any key at all.
  return bestDistance <= Math.max(1, Math.floor(word.length / 4)) ? best : undefined;
}

function measureEditDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function dedupeIssues(issues: readonly Issue[]): Issue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = `${issue.line}:${issue.column}:${issue.path}:${issue.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
