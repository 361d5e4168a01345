import type { DbPageCheck } from '@deploykit/core';
import { failCheck, passCheck, type CheckRunner } from './check-types.js';
import { sha256Hex } from './fetch-bytes.js';
import { backoff, fetchPage } from './http-fetch.js';

/** Database-backed page check: status 200 and text that lives in the database; facts: a digest of the page text. */
export const runDbPageCheck: CheckRunner<DbPageCheck> = async (check, environment) => {
  const started = Date.now();
  const url = new URL(check.path, environment.baseUrl).toString();
  let last = { expected: 'an HTTP answer', got: 'nothing' };
  for (let attempt = 0; attempt <= 1; attempt += 1) {
    if (attempt > 0) await backoff(attempt);
    const page = await fetchPage(url, { timeoutMs: 10_000 });
    if ('error' in page) {
      last = { expected: `an HTTP answer from ${url}`, got: page.error };
      continue;
    }
    if (page.status !== 200) {
      last = { expected: 'status 200', got: `status ${page.status}: ${JSON.stringify(page.body.slice(0, 120))}` };
      continue;
    }
    if (!page.body.includes(check.contains)) {
      last = {
        expected: `page text containing ${JSON.stringify(check.contains)}`,
        got: `${page.body.length} bytes without it`,
      };
      continue;
    }
    return passCheck(check, started, { url, bytes: page.body.length, sha256: sha256Hex(page.body) });
  }
  return failCheck(check, started, last.expected, last.got, `GET ${url}`);
};
