import { createHash } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, DependencyError, type Host } from '@deploykit/core';

/** Where the ffl binary comes from: a configured path, a URL + SHA-256, or PATH and `searchDirs`. */
export interface FflBinaryOptions {
  readonly path?: string;
  readonly url?: string;
  /** Hex SHA-256 the downloaded file must have (required with url). */
  readonly sha256?: string;
  /** Folders searched after PATH (default /opt/ffl). */
  readonly searchDirs?: readonly string[];
}

/** The default folders searched for ffl after PATH. */
export const FFL_SEARCH_DIRS: readonly string[] = ['/opt/ffl'];

/** A resolved ffl binary. */
export interface ResolvedFflBinary {
  readonly path: string;
  readonly source: 'path' | 'configured' | 'download';
}

/** Builds the shell probe that prints the first ffl found in PATH or the search dirs. */
export function buildFflProbe(searchDirs: readonly string[]): string[] {
  const dirs = searchDirs.map((dir) => `'${dir.replace(/'/g, `'\\''`)}'`).join(' ');
  return [
    'sh',
    '-c',
    `command -v ffl && exit 0; for d in ${dirs}; do if [ -x "$d/ffl" ]; then echo "$d/ffl"; exit 0; fi; done; exit 1`,
  ];
}

/**
 * Finds ffl on a host: the configured path (checked executable), else PATH then `searchDirs`.
 * Throws DependencyError naming the host and where it looked.
 */
export async function locateFflBinary(host: Host, options: FflBinaryOptions = {}): Promise<ResolvedFflBinary> {
  if (options.path !== undefined) {
    const check = await host.run({ argv: ['test', '-x', options.path], timeoutMs: 30_000 });
    if (check.exitCode === 0) return { path: options.path, source: 'configured' };
    throw new DependencyError(
      'FFL_MISSING',
      `ffl is not installed on host ${host.name} (no executable at the configured path ${options.path})`,
      {
        hint: `Install ffl at ${options.path} on ${host.name}, or fix transports.ffl.path in the config.`,
      },
    );
  }
  const searchDirs = options.searchDirs ?? FFL_SEARCH_DIRS;
  const probe = await host.run({ argv: buildFflProbe(searchDirs), timeoutMs: 30_000 });
  const found = probe.stdout.trim().split('\n')[0];
  if (probe.exitCode === 0 && found) return { path: found, source: 'path' };
  if (probe.timedOut || probe.signal !== null) {
    throw new DependencyError(
      'FFL_PROBE_FAILED',
      `could not look for ffl on host ${host.name}: the probe ${probe.timedOut ? 'took over 30 s' : `was killed by ${probe.signal}`}`,
      {
        hint: `Check that ${host.name} answers (load, disk); then run again.`,
      },
    );
  }
  throw new DependencyError(
    'FFL_MISSING',
    `ffl is not installed on host ${host.name} (looked in PATH and ${searchDirs.join(', ')})`,
    {
      hint: `Install the FastFileLink CLI on ${host.name} (https://github.com/nuwainfo/ffl), configure its path, or choose --transport ssh.`,
    },
  );
}

/**
 * Downloads ffl from `url` into `dir`, checks its SHA-256 and makes it executable. Throws
 * ConfigError without a sha256 and DependencyError when the download fails or the hash differs.
 */
export async function downloadFflBinary(
  url: string,
  sha256: string | undefined,
  dir: string,
): Promise<ResolvedFflBinary> {
  if (sha256 === undefined || !/^[0-9a-fA-F]{64}$/.test(sha256)) {
    throw new ConfigError(
      'FFL_URL_WITHOUT_SHA256',
      `an ffl download URL needs a SHA-256 to check it against (got ${sha256 === undefined ? 'none' : JSON.stringify(sha256)})`,
      {
        hint: 'Set transports.ffl.sha256 to the hex SHA-256 of the file at the URL.',
      },
    );
  }
  let body: Buffer;
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    body = Buffer.from(await response.arrayBuffer());
  } catch (error) {
    throw new DependencyError('FFL_DOWNLOAD_FAILED', `cannot download ffl from ${url}: ${(error as Error).message}`, {
      hint: 'Check the URL and the network, or install ffl on the source host.',
      cause: error,
    });
  }
  const actual = createHash('sha256').update(body).digest('hex');
  if (actual !== sha256.toLowerCase()) {
    throw new DependencyError(
      'FFL_CHECKSUM_MISMATCH',
      `the ffl downloaded from ${url} has SHA-256 ${actual}, expected ${sha256.toLowerCase()}`,
      {
        hint: 'The file changed or the download was tampered with; check the URL and the configured sha256.',
      },
    );
  }
  const path = join(dir, 'ffl');
  await writeFile(path, body, { mode: 0o700 });
  await chmod(path, 0o700);
  return { path, source: 'download' };
}

/**
 * Resolves ffl for the source host: configured path, else URL + SHA-256 (downloaded into
 * `downloadDir`, which the caller removes after use), else PATH and the search dirs.
 */
export async function resolveFflBinary(
  host: Host,
  options: FflBinaryOptions,
  downloadDir: string,
): Promise<ResolvedFflBinary> {
  if (options.path === undefined && options.url !== undefined)
    return downloadFflBinary(options.url, options.sha256, downloadDir);
  return locateFflBinary(host, options);
}
