import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppFolder } from '@deploykit/core';

/**
 * Reads the values held in an app's secret files, so script output can be redacted. A line
 * `KEY=value` contributes `value`; a file without such lines contributes its whole trimmed content.
 */
export async function readSecretValues(app: AppFolder): Promise<string[]> {
  const values: string[] = [];
  for (const relative of app.manifest.secrets) {
    let text: string;
    try {
      text = await readFile(join(app.dir, relative), 'utf8');
    } catch {
      continue;
    }
    const pairs = text
      .split('\n')
      .map((line) =>
        /^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=\s*(.*)$/
          .exec(line)?.[1]
          ?.trim()
          .replace(/^(['"])(.*)\1$/, '$2'),
      )
      .filter((value): value is string => value !== undefined && value.length >= 4);
    if (pairs.length > 0) values.push(...pairs);
    else if (text.trim().length >= 4) values.push(text.trim());
  }
  return values;
}
