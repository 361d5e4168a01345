import type { HttpCheck } from '@deploykit/core';
import type { CheckResult, CheckRunner } from './check-types.js';
import { backoff, fetchPage } from './http-fetch.js';

/** Compares one fetched page with an http check's expectations; returns the failure reason or undefined. */
export function judgeHttp(
  check: HttpCheck,
  page: { status: number; body: string },
): { expected: string; got: string } | undefined {
  const wantStatus = check.status ?? 200;
  if (page.status !== wantStatus) return { expected: `status ${wantStatus}`, got: `status ${page.status}` };
  if (check.contains !== undefined && !page.body.includes(check.contains)) {
    return {
      expected: `body containing ${JSON.stringify(check.contains)}`,
      got: `body of ${page.body.length} bytes without it: ${JSON.stringify(page.body.slice(0, 120))}`,
    };
  }
  if (check.not_contains !== undefined && page.body.includes(check.not_contains)) {
    return { expected: `body without ${JSON.stringify(check.not_contains)}`, got: 'body containing it' };
  }
  return undefined;
}

/** HTTP endpoint check: status and body text, retried with backoff while the app is starting. */
export const runHttpCheck: CheckRunner<HttpCheck> = async (check, environment) => {
  const started = Date.now();
  const url = new URL(check.path, environment.baseUrl).toString();
  const retries = check.retries ?? 3;
  let last: { expected: string; got: string } = { expected: 'an answer', got: 'nothing' };
  for (let attempt = 0; attempt <= retries; attempt += 1) {
    if (attempt > 0) await backoff(attempt);
    const page = await fetchPage(url, { timeoutMs: (check.timeout_seconds ?? 5) * 1000 });
    if ('error' in page) {
      last = { expected: `an HTTP answer from ${url}`, got: page.error };
      continue;
    }
    const failure = judgeHttp(check, page);
    if (failure === undefined) {
      return {
        name: check.name,
        type: 'http',
        status: 'ok',
        durationMs: Date.now() - started,
        facts: { url, status: page.status },
      } satisfies CheckResult;
    }
    last = failure;
  }
  return {
    name: check.name,
    type: 'http',
    status: 'failed',
    durationMs: Date.now() - started,
    reason: `GET ${url}: expected ${last.expected}, got ${last.got} (after ${retries + 1} attempts)`,
    ...last,
  };
};
