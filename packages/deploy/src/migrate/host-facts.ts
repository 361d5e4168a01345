import { constants } from 'node:fs';
import { access, readFile, stat, statfs } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { readLock, type LockHolder } from './app-lock.js';
import type { HostContext } from '../host-context.js';

/** Tools a migration may need on a host (which ones depends on the app and the transport). */
export const MIGRATE_TOOLS = ['borg', 'tar', 'psql', 'pg_dump', 'pg_restore', 'mysql', 'mysqldump', 'getfattr', 'setfattr', 'fallocate', 'ffl', 'scp', 'ssh'] as const;

/** What a host reports about itself before a migration (`deploy receive preflight --json`). */
export interface HostFacts {
  readonly deployVersion: string;
  readonly nodeVersion: string;
  readonly hostName: string;
  readonly hostAddress: string;
  readonly appsRoot: string;
  readonly stateDir: string;
  readonly tools: Readonly<Record<string, string | null>>;
  /** Bytes available to us on the filesystem holding the apps root. */
  readonly freeBytes: number;
  readonly app: {
    readonly dir: string;
    readonly exists: boolean;
    /** Run id of an earlier migration into this host that did not finish (its leftovers are ours to clean). */
    readonly unfinishedRun: string | null;
    readonly lock: LockHolder | null;
  };
}

/** The deploy version: the deploy package's version field. */
export async function readDeployVersion(): Promise<string> {
  const text = await readFile(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
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

/** Path of the marker a target keeps while a migration into it is unfinished. */
export function incomingMarkerPath(context: HostContext, app: string): string {
  return join(context.stateDir, 'apps', app, 'migrate-incoming.json');
}

/** Collects this host's facts for a migration of `app`. */
export async function collectHostFacts(context: HostContext, app: string): Promise<HostFacts> {
  const tools: Record<string, string | null> = {};
  for (const tool of MIGRATE_TOOLS) tools[tool] = await findOnPath(tool);
  const dir = join(context.appsRoot, app);
  const marker = await readFile(incomingMarkerPath(context, app), 'utf8').then((t) => JSON.parse(t) as { runId: string }, () => undefined);
  return {
    deployVersion: await readDeployVersion(),
    nodeVersion: process.version,
    hostName: context.hostName,
    hostAddress: context.hostAddress,
    appsRoot: context.appsRoot,
    stateDir: context.stateDir,
    tools,
    freeBytes: await freeBytesAt(context.appsRoot),
    app: {
      dir,
      exists: (await stat(dir).catch(() => undefined)) !== undefined,
      unfinishedRun: marker?.runId ?? null,
      lock: (await readLock(context.stateDir, app)) ?? null,
    },
  };
}
