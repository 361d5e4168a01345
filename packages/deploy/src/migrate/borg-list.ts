import { DependencyError, describeExit, type Host, type RunResult } from '@deploykit/core';

/** What borg says when another borg holds the repository lock (borg 1.x exits 2 after --lock-wait, default 1 s). */
const BORG_LOCKED = /Failed to create\/acquire the lock|lock\.exclusive|LockTimeout|LockFailed/i;

/** The last meaningful line borg wrote on stderr. */
function lastLine(stderr: string): string {
  return (
    stderr
      .trim()
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean)
      .pop() ?? ''
  );
}

/**
 * The error for a borg run that failed because another borg holds the repository lock, naming the
 * lock and what to do; undefined when it did not fail, or failed for another reason.
 */
export function borgLockError(
  result: Pick<RunResult, 'exitCode' | 'stderr'>,
  repo: string,
  what: string,
): DependencyError | undefined {
  if (result.exitCode === 0 || !BORG_LOCKED.test(result.stderr)) return undefined;
  return new DependencyError(
    'BORG_LOCKED',
    `the Borg repository ${repo} is locked, so ${what} could not read it: ${lastLine(result.stderr)}`,
    {
      hint: `Another borg holds ${repo}/lock.exclusive (a backup, a prune, a borg serve): wait for it to finish and run again. If no borg runs on this host (a killed one left its lock), remove the stale lock with \`borg break-lock ${repo}\`.`,
    },
  );
}

/**
 * Runs `borg list` with `args` against the app's repository (BORG_REPO in env). Throws BORG_LOCKED
 * when another borg holds the lock: a locked repository is no "no archive". Other failures are
 * returned for the caller to judge (a repository not made yet is "no archive yet").
 */
export async function runBorgList(
  host: Host,
  env: Record<string, string>,
  args: readonly string[],
  what: string,
): Promise<RunResult> {
  const result = await host.run({ argv: ['borg', 'list', ...args], env });
  const locked = borgLockError(result, env.BORG_REPO ?? '(BORG_REPO)', what);
  if (locked) throw locked;
  return result;
}

/** Describes a failed borg run for a note or message: its exit and last stderr line. */
export function describeBorgFailure(result: Pick<RunResult, 'exitCode' | 'signal' | 'stderr'>): string {
  const line = lastLine(result.stderr);
  return `${describeExit(result)}${line ? `: ${line}` : ''}`;
}
