import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogsCheck } from '@deploykit/core';
import { findRunFile } from './app-run-files.js';
import { failCheck, passCheck, type CheckRunner } from './check-types.js';

/** Bytes read from the end of a log when nothing says where this run of the app began. */
export const LOG_TAIL_BYTES = 64 * 1024;

/** Parses a log-offsets file (`<bytes> <path relative to the app folder>` per line, written by bin/start). */
export function parseLogOffsets(text: string): Map<string, number> {
  const offsets = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\d+)\s+(.+)$/.exec(line.trim());
    if (match) offsets.set(match[2]!.replace(/^\.\//, ''), Number(match[1]));
  }
  return offsets;
}

/** Reads `path` from byte `from` to its end (at most `limit` bytes, the last ones). */
async function readFrom(path: string, from: number, size: number, limit = 4 * 1024 * 1024): Promise<string> {
  const start = Math.max(from, size - limit);
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    return buffer.toString('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Log scan: the part of each file written since the app started (from the offsets bin/start records
 * in run/log-offsets; else files untouched since the pid file was written are skipped and the last
 * 64 KiB of the others read) is matched against the patterns (case-insensitive). Fails with the
 * first matching lines.
 */
export const runLogsCheck: CheckRunner<LogsCheck> = async (check, environment) => {
  const started = Date.now();
  let patterns: RegExp[];
  try {
    patterns = check.patterns.map((pattern) => new RegExp(pattern, 'i'));
  } catch (error) {
    return failCheck(
      check,
      started,
      'valid regular expressions',
      error instanceof Error ? error.message : String(error),
    );
  }
  const { app, hostContext } = environment;
  const offsetsFile = await findRunFile(app, hostContext, 'log-offsets');
  const offsets = offsetsFile ? parseLogOffsets(await readFile(offsetsFile, 'utf8')) : undefined;
  const pidFile =
    (await findRunFile(app, hostContext, 'supervisor.pid')) ?? (await findRunFile(app, hostContext, 'app.pid'));
  const appStarted = pidFile ? (await stat(pidFile)).mtimeMs : undefined;
  const scanned: { file: string; from: string; bytes: number }[] = [];
  const matches: string[] = [];
  for (const file of check.files) {
    const path = join(app.dir, file);
    const info = await stat(path).catch(() => undefined);
    if (info === undefined || !info.isFile()) {
      scanned.push({ file, from: 'absent', bytes: 0 });
      continue;
    }
    let from: number;
    let how: string;
    const recorded = offsets?.get(file.replace(/^\.\//, ''));
    if (recorded !== undefined) {
      // A file smaller than its recorded size was rotated or truncated since: all of it is new.
      from = recorded <= info.size ? recorded : 0;
      how = `offset ${from} (recorded at start)`;
    } else if (offsets !== undefined) {
      // bin/start recorded offsets and this file did not exist then: all of it is from this run.
      from = 0;
      how = 'start (created since the app started)';
    } else if (appStarted !== undefined && info.mtimeMs < appStarted) {
      scanned.push({ file, from: 'untouched since the app started', bytes: 0 });
      continue;
    } else {
      from = Math.max(0, info.size - LOG_TAIL_BYTES);
      how = `last ${info.size - from} bytes`;
    }
    let text: string;
    try {
      text = await readFrom(path, from, info.size);
    } catch (error) {
      return failCheck(check, started, `${file} readable`, (error as NodeJS.ErrnoException).code ?? String(error));
    }
    scanned.push({ file, from: how, bytes: info.size - from });
    for (const line of text.split('\n')) {
      if (matches.length >= 5) break;
      const hit = patterns.find((pattern) => pattern.test(line));
      if (hit) matches.push(`${file}: ${line.slice(0, 300)} [${hit.source}]`);
    }
  }
  if (matches.length > 0) {
    return failCheck(
      check,
      started,
      `no line matching ${check.patterns.map((p) => JSON.stringify(p)).join(', ')}`,
      `${matches.length === 5 ? 'at least 5' : matches.length} matching line(s): ${matches.join(' | ')}`,
      '',
      { scanned, matches },
    );
  }
  return passCheck(
    check,
    started,
    { scanned },
    `${scanned.filter((s) => s.bytes > 0).length} file(s) scanned since start, nothing matched`,
  );
};
