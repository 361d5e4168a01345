import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import type { Issue } from './issue.js';

/** A line:column position, both 1-based. */
export interface SourcePosition {
  readonly line: number;
  readonly column: number;
}

/** A parsed YAML file that can tell where any document path sits in the text. */
export interface YamlSource {
  readonly file: string;
  /** The document as plain data; undefined when the text had syntax errors. */
  readonly data: unknown;
  /** Syntax errors as issues (rule "yaml-syntax"). */
  readonly errors: Issue[];
  /** Parser warnings as issues (rule "yaml-syntax"). */
  readonly warnings: Issue[];
  /** Position of the value at `segments`; falls back to the deepest ancestor that exists. */
  locateValue(segments: readonly string[]): SourcePosition;
  /** Position of the key naming `segments` (for unknown keys); falls back to locateValue. */
  locateKey(segments: readonly string[]): SourcePosition;
}

/** Splits an ajv instancePath (`/health/checks/0`) into unescaped segments. */
export function splitPointer(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Joins segments into the human path form used in issues (`health/checks/0`). */
export function joinPath(segments: readonly string[]): string {
  return segments.join('/');
}

interface Located {
  readonly node: Node | null;
  readonly key: Node | null;
}

/** Parses YAML text keeping source ranges, so later issues can point at line:column. */
export function parseYamlSource(file: string, text: string): YamlSource {
  const lineCounter = new LineCounter();
  // prettyErrors off: we build our own one-line messages from code, message and position.
  const document: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const toPosition = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const toIssues = (list: readonly { message: string; pos: [number, number] }[]): Issue[] =>
    list.map((error) => ({
      file,
      ...toPosition(error.pos[0]),
      path: '',
      message: `YAML syntax: ${error.message.split('\n')[0] ?? error.message}`,
      rule: 'yaml-syntax',
    }));
  const errors = toIssues(document.errors);
  const warnings = toIssues(document.warnings);
  const data = errors.length > 0 ? undefined : document.toJS({ maxAliasCount: 1000 });

  const rootPosition = (): SourcePosition => {
    const contents = document.contents;
    return contents?.range ? toPosition(contents.range[0]) : { line: 1, column: 1 };
  };

  // Walks as deep as the path exists and returns the last node found with the key that named it.
  const walk = (segments: readonly string[]): Located => {
    let node: Node | null = (document.contents as Node | null) ?? null;
    let key: Node | null = null;
    for (const segment of segments) {
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === segment);
        if (pair === undefined) break;
        key = (pair.key as Node | null) ?? null;
        const value = (pair.value as Node | null) ?? null;
        // `key:` with nothing after it has an empty null scalar at the line end: point at the key instead.
        const empty =
          isScalar(value) && value.value === null && value.range != null && value.range[0] === value.range[1];
        node = value === null || empty ? key : value;
      } else if (isSeq(node)) {
        const item = node.items[Number(segment)];
        if (item === undefined) break;
        key = null;
        node = item as Node;
      } else {
        break;
      }
    }
    return { node, key };
  };

  const positionOf = (node: Node | null): SourcePosition | undefined =>
    node?.range ? toPosition(node.range[0]) : undefined;

  return {
    file,
    data,
    errors,
    warnings,
    locateValue(segments) {
      const found = walk(segments);
      return positionOf(found.node) ?? positionOf(found.key) ?? rootPosition();
    },
    locateKey(segments) {
      const found = walk(segments);
      return positionOf(found.key) ?? positionOf(found.node) ?? rootPosition();
    },
  };
}
