import type { AppFolder, CheckSpec, Host } from '@deploykit/core';
import type { HostContext } from '../host-context.js';

/** The outcome of one health check; a failing one says what it expected and what it got. */
export interface CheckResult {
  readonly name: string;
  readonly type: CheckSpec['type'];
  readonly status: 'ok' | 'failed' | 'skipped';
  readonly durationMs: number;
  readonly reason?: string;
  readonly expected?: string;
  readonly got?: string;
  /** Facts other steps compare across hosts (sampled checksums, page text digests, counts). */
  readonly facts?: Readonly<Record<string, unknown>>;
}

/** One file an uploads check sampled: its path inside the volume and what it held. */
export interface SampledFile {
  readonly name: string;
  /** SHA-256 of the file, or of its first `hashedBytes` when it is larger than the check's max_bytes. */
  readonly sha256: string;
  readonly bytes: number;
  /** Present when only a prefix was hashed: its length. */
  readonly hashedBytes?: number;
}

/**
 * Results of an earlier run (another host's, or this host's before a change) that checks compare
 * against: an uploads check then fetches the baseline's sampled names and expects their checksums.
 */
export interface CheckBaseline {
  readonly checks: readonly CheckResult[];
}

/** What a check may use: the app, where it answers, and the host it runs on. */
export interface CheckEnvironment {
  readonly app: AppFolder;
  readonly baseUrl: string;
  readonly host: Host;
  readonly hostContext: HostContext;
  readonly baseline?: CheckBaseline;
}

/** Runs one kind of check. */
export type CheckRunner<T extends CheckSpec = CheckSpec> = (
  check: T,
  environment: CheckEnvironment,
) => Promise<CheckResult>;

/** Builds a failed result with the reason spelled as "expected X, got Y". */
export function failCheck(
  check: CheckSpec,
  started: number,
  expected: string,
  got: string,
  context = '',
  facts?: Record<string, unknown>,
): CheckResult {
  return {
    name: check.name,
    type: check.type,
    status: 'failed',
    durationMs: Date.now() - started,
    reason: `${context ? `${context}: ` : ''}expected ${expected}, got ${got}`,
    expected,
    got,
    ...(facts ? { facts } : {}),
  };
}

/** Builds a passing result. */
export function passCheck(
  check: CheckSpec,
  started: number,
  facts?: Record<string, unknown>,
  reason?: string,
): CheckResult {
  return {
    name: check.name,
    type: check.type,
    status: 'ok',
    durationMs: Date.now() - started,
    ...(reason ? { reason } : {}),
    ...(facts ? { facts } : {}),
  };
}
