import { constants } from 'node:fs';
import { access, statfs } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { DEPLOY_VERSION } from '../version.js';

/** The deploy version: the deploy package's version field (see version.ts). */
export async function readDeployVersion(): Promise<string> {
  return DEPLOY_VERSION;
}

/** Finds a program on PATH (like `command -v`); null when absent. */
export async function findOnPath(program: string, path = process.env.PATH ?? ''): Promise<string | null> {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  return null;
}

/** Free bytes on the filesystem of a path, or of its nearest existing parent. */
export async function freeBytesAt(path: string): Promise<number> {
  let current = path;
  for (;;) {
    try {
      const fs = await statfs(current);
      return fs.bavail * fs.bsize;
    } catch {
      const parent = dirname(current);
      if (parent === current) return 0;
      current = parent;
    }
  }
}
