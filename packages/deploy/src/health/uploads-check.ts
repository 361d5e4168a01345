import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { UploadsCheck } from '@deploykit/core';
import {
  failCheck,
  passCheck,
  type CheckEnvironment,
  type CheckResult,
  type CheckRunner,
  type SampledFile,
} from './check-types.js';
import { fetchDigest, fileDigest } from './fetch-bytes.js';
import { joinUrlPath } from './url-join.js';

/** Lists every file under dir (relative paths, `/`-separated, sorted), skipping dotfiles and dot folders. */
export async function listVolumeFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const entries = await readdir(join(dir, relative), { withFileTypes: true });
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) found.push(path);
      // A symlink counts only when it leads to a regular file: one to a folder is no upload to fetch.
      else if (entry.isSymbolicLink() && (await stat(join(dir, path)).catch(() => undefined))?.isFile())
        found.push(path);
    }
  };
  await walk('');
  // Code-point order, not locale order, so every host picks the same sample.
  return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * True for names an app can be asked for in a URL path. Names with control characters (a tab, a
 * newline) are legal on disk but no web app serves them; sampling them would fail a healthy app.
 */
export function isUrlServable(name: string): boolean {
  return !/[\u0000-\u001f\u007f]/.test(name);
}

/** Picks `count` names spread evenly over a sorted list (first, ..., towards the last), deterministic. */
export function pickSample<T>(sorted: readonly T[], count: number): T[] {
  if (sorted.length <= count) return [...sorted];
  const picked: T[] = [];
  for (let index = 0; index < count; index += 1) picked.push(sorted[Math.floor((index * sorted.length) / count)]!);
  return picked;
}

/**
 * Bytes of each sampled file that are read and hashed when the check does not say (`max_bytes`): a
 * larger file is checked by its size and the SHA-256 of its first that many bytes, so one huge upload
 * does not make a health check (inside a cutover's write-stop window) read and download all of it.
 */
export const DEFAULT_UPLOADS_MAX_BYTES = 4 * 1024 * 1024;

/** Long enough for max_bytes of a slow app; the body beyond is not downloaded. */
const FETCH_TIMEOUT_MS = 10_000;

/**
 * How many bytes of a sampled file to hash: a baseline entry's own prefix (or all, when it hashed
 * the whole file: an older baseline, or a file under the limit) so the two compare; else max_bytes.
 */
export function hashLimit(baseline: SampledFile | undefined, maxBytes: number): number {
  if (baseline === undefined) return maxBytes;
  return baseline.hashedBytes ?? Number.POSITIVE_INFINITY;
}

/** The sample an earlier run of the same check took (from a baseline), if any. */
function baselineSample(check: UploadsCheck, environment: CheckEnvironment): readonly SampledFile[] | undefined {
  const earlier = environment.baseline?.checks.find(
    (result) => result.name === check.name && result.type === 'uploads',
  );
  const sample = earlier?.facts?.sample;
  return Array.isArray(sample) ? (sample as SampledFile[]) : undefined;
}

/**
 * Uploads check: samples files from the volume (sorted, then spread), fetches each under url_prefix
 * and compares size and SHA-256 with the file on disk (of the first max_bytes for a larger file). With a baseline (the source host's result, or this
 * host's before a change) it checks the baseline's names and expects the baseline's checksums, so a
 * removed or altered upload fails. Facts: the sampled names and checksums, the volume's file count.
 */
export const runUploadsCheck: CheckRunner<UploadsCheck> = async (check, environment): Promise<CheckResult> => {
  const started = Date.now();
  const volume = environment.app.manifest.volumes.find((candidate) => candidate.name === check.volume);
  if (volume === undefined)
    return failCheck(
      check,
      started,
      `a volume named ${check.volume} in app.yaml`,
      `volumes ${environment.app.manifest.volumes.map((v) => v.name).join(', ') || '(none)'}`,
    );
  const volumeDir = join(environment.app.dir, volume.path);
  let all: string[];
  try {
    all = await listVolumeFiles(volumeDir);
  } catch (error) {
    return failCheck(
      check,
      started,
      `volume folder ${volume.path} readable`,
      (error as NodeJS.ErrnoException).code ?? String(error),
    );
  }
  const expected = baselineSample(check, environment);
  const names = expected?.map((file) => file.name) ?? pickSample(all.filter(isUrlServable), check.sample ?? 5);
  if (names.length === 0) {
    return {
      name: check.name,
      type: 'uploads',
      status: 'skipped',
      durationMs: Date.now() - started,
      reason: `volume ${volume.path} holds no files to sample`,
      facts: { count: 0, sample: [] },
    };
  }
  const maxBytes = check.max_bytes ?? DEFAULT_UPLOADS_MAX_BYTES;
  const sample: SampledFile[] = [];
  const problems: string[] = [];
  for (const name of names) {
    const want = expected?.find((file) => file.name === name);
    // With a baseline, hash what it hashed (its prefix, or the whole file when it hashed all): the two compare.
    const limit = hashLimit(want, maxBytes);
    let disk: Awaited<ReturnType<typeof fileDigest>> | undefined;
    try {
      disk = await fileDigest(join(volumeDir, name), limit);
    } catch (error) {
      problems.push(`${name}: not readable on disk (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
    const url = new URL(joinUrlPath(check.url_prefix, name), environment.baseUrl).toString();
    const served = await fetchDigest(url, FETCH_TIMEOUT_MS, limit);
    if ('error' in served) {
      problems.push(`${name}: GET ${url} failed: ${served.error}`);
      continue;
    }
    if (served.status !== 200) {
      problems.push(`${name}: GET ${url} answered ${served.status}`);
      continue;
    }
    const part = served.hashedBytes < served.bytes ? ` of the first ${served.hashedBytes} bytes` : '';
    if (disk !== undefined && disk.bytes !== served.bytes)
      problems.push(`${name}: served ${served.bytes} bytes, ${disk.bytes} on disk`);
    else if (disk !== undefined && disk.sha256 !== served.sha256)
      problems.push(
        `${name}: served sha256${part} ${served.sha256.slice(0, 12)} differs from disk ${disk.sha256.slice(0, 12)}`,
      );
    if (want !== undefined && (want.sha256 !== served.sha256 || want.bytes !== served.bytes))
      problems.push(
        `${name}: sha256${part} ${served.sha256.slice(0, 12)} (${served.bytes} bytes) differs from the baseline's ${want.sha256.slice(0, 12)} (${want.bytes} bytes)`,
      );
    sample.push({
      name,
      sha256: served.sha256,
      bytes: served.bytes,
      ...(served.hashedBytes < served.bytes ? { hashedBytes: served.hashedBytes } : {}),
    });
  }
  const facts = { count: all.length, sample };
  if (problems.length > 0) {
    return failCheck(
      check,
      started,
      `${names.length} sampled upload(s) served as stored${expected ? ' (baseline sample)' : ''}`,
      `${problems.length} problem(s): ${problems.join('; ')}`,
      '',
      facts,
    );
  }
  return passCheck(
    check,
    started,
    facts,
    `${sample.length} of ${all.length} file(s) sampled${expected ? ' (baseline names)' : ''}`,
  );
};
