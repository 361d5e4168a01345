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

/** What a check may use: the app, where it answers, and the host it runs on. */
export interface CheckEnvironment {
  readonly app: AppFolder;
  readonly baseUrl: string;
  readonly host: Host;
  readonly hostContext: HostContext;
}

/** Runs one kind of check. */
export type CheckRunner<T extends CheckSpec = CheckSpec> = (check: T, environment: CheckEnvironment) => Promise<CheckResult>;
