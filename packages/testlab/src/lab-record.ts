import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '@deploykit/core';
import type { LabRecord } from './lab-types.js';

/** The file in a lab dir that describes the lab. */
export const LAB_RECORD_FILE = 'lab.json';

/** Writes lab.json atomically (temp file + rename), so a reader never sees half a record. */
export async function writeLabRecord(record: LabRecord): Promise<void> {
  const path = join(record.dir, LAB_RECORD_FILE);
  await writeFile(`${path}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

/** Reads <dir>/lab.json; undefined when there is none; throws ConfigError when it is not a lab record. */
export async function readLabRecord(dir: string): Promise<LabRecord | undefined> {
  const path = join(dir, LAB_RECORD_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR')
      return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError('LAB_RECORD_INVALID', `${path} is not valid JSON`, {
      cause: error,
      hint: `Remove ${dir} by hand; no lab can be found through it.`,
    });
  }
  const record = parsed as Partial<LabRecord>;
  if (record.version !== 1 || typeof record.id !== 'string' || !Array.isArray(record.hosts)) {
    throw new ConfigError('LAB_RECORD_INVALID', `${path} is not a lab record (version 1)`, {
      hint: `Remove ${dir} by hand; no lab can be found through it.`,
    });
  }
  return record as LabRecord;
}
