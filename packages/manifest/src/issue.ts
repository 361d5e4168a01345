import { relative } from 'node:path';

/** One problem found in a manifest, config file or app folder, with where it is. */
export interface Issue {
  /** File the problem is in (as given to the loader, usually absolute). */
  readonly file: string;
  /** 1-based line; 0 when the problem has no position (a missing file). */
  readonly line: number;
  /** 1-based column; 0 when the problem has no position. */
  readonly column: number;
  /** Slash-separated path into the document, e.g. `health/checks/2/volume`; "" for the whole document. */
  readonly path: string;
  /** Human message without the path, e.g. `must be integer`. */
  readonly message: string;
  /** "schema", "yaml-syntax" or the name of the cross-field rule that found it. */
  readonly rule: string;
}

/** Options of formatIssue. */
export interface FormatIssueOptions {
  /** Print the file relative to this folder instead of as stored. */
  readonly relativeTo?: string;
}

/** Formats an issue as `app.yaml:12:5: health/checks/0: must have required property 'path'`. */
export function formatIssue(issue: Issue, options: FormatIssueOptions = {}): string {
  const file = options.relativeTo === undefined ? issue.file : relative(options.relativeTo, issue.file) || issue.file;
  const position = issue.line > 0 ? `:${issue.line}:${issue.column}` : '';
  const path = issue.path === '' ? '' : `${issue.path}: `;
  return `${file}${position}: ${path}${issue.message}`;
}

/** Orders issues by file, line and column so reports read top to bottom. */
export function sortIssues(issues: readonly Issue[]): Issue[] {
  return [...issues].sort(
    (a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column || a.path.localeCompare(b.path),
  );
}
