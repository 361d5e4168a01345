import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StaticCheck } from '@deploykit/core';
import { failCheck, passCheck, type CheckRunner } from './check-types.js';
import { fetchDigest, sha256Hex } from './fetch-bytes.js';
import { joinUrlPath } from './url-join.js';

/** Static files check: each listed file fetched under url_prefix must match the file in the app folder byte for byte. */
export const runStaticCheck: CheckRunner<StaticCheck> = async (check, environment) => {
  const started = Date.now();
  const files: { file: string; sha256: string; bytes: number }[] = [];
  for (const file of check.files) {
    let disk: Buffer;
    try {
      disk = await readFile(join(environment.app.dir, check.root, file));
    } catch (error) {
      return failCheck(
        check,
        started,
        `${check.root}/${file} readable in the app folder`,
        (error as NodeJS.ErrnoException).code ?? String(error),
      );
    }
    const url = new URL(joinUrlPath(check.url_prefix, file), environment.baseUrl).toString();
    const served = await fetchDigest(url);
    if ('error' in served) return failCheck(check, started, `an HTTP answer`, served.error, `GET ${url}`);
    if (served.status !== 200) return failCheck(check, started, 'status 200', `status ${served.status}`, `GET ${url}`);
    const want = sha256Hex(disk);
    if (served.sha256 !== want) {
      return failCheck(
        check,
        started,
        `${disk.length} bytes sha256 ${want.slice(0, 12)} (as on disk)`,
        `${served.bytes} bytes sha256 ${served.sha256.slice(0, 12)}`,
        `GET ${url}`,
      );
    }
    files.push({ file, sha256: want, bytes: disk.length });
  }
  return passCheck(check, started, { files });
};
